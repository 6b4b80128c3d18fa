// Package systemtest runs the real service pair for the end-to-end and
// fault suites: it builds the apiservice and stockservice binaries once,
// starts them on loopback ports with their JSON logs captured, gives each
// system its own PostgreSQL database, RabbitMQ queue and fake stooq, and
// talks to the API over HTTP. It is for tests only and fails (never
// skips) a test whose services cannot be reached.
package systemtest
