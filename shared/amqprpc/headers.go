package amqprpc

// RequestIDHeader is the message header carrying the id of the HTTP
// request a call was made for, so the worker's log lines about it can be
// matched with the API's. W3C trace context travels beside it in the
// traceparent and tracestate headers (see package tracing).
const RequestIDHeader = "x-request-id"
