"""The only code that speaks gRPC: servicers, proto conversion, status mapping, interceptors."""
