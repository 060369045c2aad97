"""Language model providers, the request/response protocol, and structured-output parsing."""
