"""deepcall-gateway: a GraphQL gateway for DeepCall's Call Report API v2 ``reportCount``."""

__version__ = "0.1.0"
