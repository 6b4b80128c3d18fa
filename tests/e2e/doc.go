// Package e2e holds the end-to-end suite: it builds the real apiservice and
// stockservice binaries, starts them against the real PostgreSQL and
// RabbitMQ (a fresh database and queue per system) and a fake stooq, and
// walks the API as a client would. Run it with `make test` (build tag
// integration).
package e2e
