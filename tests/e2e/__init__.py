"""End-to-end tests: the router through API Gateway v2 events, the CLI and `querio serve`."""
