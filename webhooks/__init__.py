"""Signed webhooks: endpoints operators register, the events the cluster emits, their deliveries."""
