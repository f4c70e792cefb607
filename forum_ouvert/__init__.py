"""The `forum-ouvert` command and what it runs: the local launcher, the demo, the mail catcher and the
independent verifier of the public record. Not a service: it starts, fills and checks them."""
