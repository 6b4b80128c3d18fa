package amqprpc

import (
	"context"
	"errors"
	"fmt"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// QueueType is the kind of RabbitMQ queue the request queue is: classic
// (one node holds it) or quorum (replicated over the cluster with Raft).
type QueueType string

// The queue types an RPC queue can be declared as.
const (
	QueueClassic QueueType = amqp.QueueTypeClassic
	QueueQuorum  QueueType = amqp.QueueTypeQuorum
)

// ParseQueueType reads a queue type (classic or quorum); empty means
// classic.
func ParseQueueType(s string) (QueueType, error) {
	switch QueueType(s) {
	case "", QueueClassic:
		return QueueClassic, nil
	case QueueQuorum:
		return QueueQuorum, nil
	}
	return "", fmt.Errorf("queue type %q: want classic or quorum", s)
}

// ErrQueueMismatch: the request queue exists with other arguments than
// this program declares (for example classic where it wants quorum). The
// broker refuses such a declaration (PRECONDITION_FAILED) and a retry
// cannot help: it needs an operator (delete the queue or use another
// name).
var ErrQueueMismatch = errors.New("amqprpc: request queue exists with other arguments")

// declareQueue declares an RPC request queue. Every declaration of a queue
// must use the same arguments, or the broker refuses it with
// PRECONDITION_FAILED, so they live here and only here. A refusal for that
// reason wraps ErrQueueMismatch.
func declareQueue(ch *amqp.Channel, name string, typ QueueType) error {
	if typ == "" {
		typ = QueueClassic
	}
	_, err := ch.QueueDeclare(name,
		true,  // durable: survives a broker restart, like the workers expect (and quorum requires)
		false, // autoDelete: stays when the last worker goes, so requests get a route
		false, // exclusive
		false, // noWait
		amqp.Table{amqp.QueueTypeArg: string(typ)},
	)
	if err != nil {
		var ae *amqp.Error
		if errors.As(err, &ae) && ae.Code == amqp.PreconditionFailed {
			return fmt.Errorf("%w: declare %s queue %s: %s (delete the queue, or set RPC_QUEUE to a new name, on every program)", ErrQueueMismatch, typ, name, ae.Reason)
		}
		return fmt.Errorf("declare queue %s: %w", name, err)
	}
	return nil
}

// CheckQueue waits for conn and then checks that queue, if it exists, has
// the arguments a Server with typ declares. A queue that does not exist
// yet passes: the workers declare it. A mismatch wraps ErrQueueMismatch.
// It returns ctx's error if the broker is not reached before ctx ends.
//
// The API calls it at start so that a queue type that disagrees with the
// workers' stops it with a clear error instead of showing only in their
// logs.
func CheckQueue(ctx context.Context, conn *Conn, queue string, typ QueueType) error {
	for {
		c, changed, closed := conn.session()
		if closed {
			return ErrClosed
		}
		if c != nil {
			err := checkQueueOn(c, queue, typ)
			if err == nil || errors.Is(err, ErrQueueMismatch) {
				return err
			}
			conn.log.Warn("amqp queue check", "queue", queue, "error", err)
		}
		retry := time.NewTimer(time.Second)
		select {
		case <-ctx.Done():
			retry.Stop()
			return fmt.Errorf("amqprpc: check queue %s: %w", queue, ctx.Err())
		case <-changed:
		case <-retry.C:
		}
		retry.Stop()
	}
}

// checkQueueOn checks on one connection. A passive declare finds whether
// the queue exists (it reports no arguments); only then does an active
// declare with the same arguments compare them, so the check never creates
// the queue and ErrNoRoute keeps meaning "no worker ever declared it".
func checkQueueOn(c *amqp.Connection, queue string, typ QueueType) error {
	ch, err := c.Channel()
	if err != nil {
		return fmt.Errorf("open channel: %w", err)
	}
	_, err = ch.QueueDeclarePassive(queue, true, false, false, false, nil)
	if err != nil {
		// The broker closed the channel with the error.
		var ae *amqp.Error
		if errors.As(err, &ae) && ae.Code == amqp.NotFound {
			return nil
		}
		return fmt.Errorf("passive declare %s: %w", queue, err)
	}
	defer ch.Close()
	return declareQueue(ch, queue, typ)
}
