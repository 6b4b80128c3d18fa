// Package faults breaks the service pair on purpose and checks what users
// see and what is kept: broker and database links cut, slowed or refused
// through in-process toxiproxy proxies, workers killed mid-request, stooq
// misbehaving, programs stopped under load, and a soak test that does all
// of it at once and counts that no answer is lost. The tests need the
// integration build tag and the real PostgreSQL and RabbitMQ; see
// docs/reliability.md for the table of results.
package faults
