package amqprpc

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// QueueType is the kind of RabbitMQ queue the request queue is: classic
// (one node holds it) or quorum (replicated over the cluster).
type QueueType string

// The queue types an RPC queue can be declared as.
const (
	QueueClassic QueueType = amqp.QueueTypeClassic
	QueueQuorum  QueueType = amqp.QueueTypeQuorum
)

// ParseQueueType reads classic or quorum; empty means classic.
func ParseQueueType(s string) (QueueType, error) {
	switch t := cmp.Or(QueueType(s), QueueClassic); t {
	case QueueClassic, QueueQuorum:
		return t, nil
	}
	return "", fmt.Errorf("queue type %q: want classic or quorum", s)
}

// declareQueue declares an RPC request queue: durable (quorum requires it)
// and not auto-deleted, so requests keep a route while no worker runs.
func declareQueue(ch *amqp.Channel, name string, typ QueueType) error {
	_, err := ch.QueueDeclare(name, true, false, false, false, amqp.Table{amqp.QueueTypeArg: string(typ)})
	var ae *amqp.Error
	if errors.As(err, &ae) && ae.Code == amqp.PreconditionFailed {
		return fmt.Errorf("%w: declare %s queue %s: %s (delete the queue, or set RPC_QUEUE to a new name, on every program)", ErrQueueMismatch, typ, name, ae.Reason)
	}
	if err != nil {
		return fmt.Errorf("declare queue %s: %w", name, err)
	}
	return nil
}

// CheckQueue waits for conn and checks that queue, if it exists, has the
// arguments a Server with typ declares, so the API too stops on a mismatch.
// It returns ctx's error if the broker is not reached in time.
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
		select {
		case <-ctx.Done():
			return fmt.Errorf("amqprpc: check queue %s: %w", queue, ctx.Err())
		case <-changed:
		case <-time.After(time.Second):
		}
	}
}

// checkQueueOn declares the queue only if a passive declare finds it, so
// that ErrNoRoute keeps meaning "no worker declared it".
func checkQueueOn(c *amqp.Connection, queue string, typ QueueType) error {
	ch, err := c.Channel()
	if err != nil {
		return fmt.Errorf("open channel: %w", err)
	}
	if _, err := ch.QueueDeclarePassive(queue, true, false, false, false, nil); err != nil {
		// The broker has closed the channel.
		var ae *amqp.Error
		if errors.As(err, &ae) && ae.Code == amqp.NotFound {
			return nil
		}
		return fmt.Errorf("passive declare %s: %w", queue, err)
	}
	defer ch.Close()
	return declareQueue(ch, queue, typ)
}
