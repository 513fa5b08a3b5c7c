"""The HTTP gateway: thin routes over the service layer."""
