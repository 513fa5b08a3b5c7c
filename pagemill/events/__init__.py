"""Events: one model (an outbox of CloudEvents) that feeds every channel — streams, webhooks, NATS."""
