"""sigver enrollment application: user store, enrollment, verification and HTTP service."""
