"""Errors chelian raises, translated from library errors where they enter.

    ChelianError
    ├── ConfigError            settings missing or invalid at start
    ├── ValidationError        input that breaks a rule (VIN, signal value, e-mail ...)
    ├── NotFoundError          no such user/vehicle/signal, or not yours to see
    ├── ConflictError          already exists (e-mail, VIN)
    └── AuthError              wrong password or token, car credentials refused
"""


class ChelianError(Exception):
    """Base of every error chelian raises on purpose."""


class ConfigError(ChelianError):
    pass


class ValidationError(ChelianError):
    pass


class NotFoundError(ChelianError):
    pass


class ConflictError(ChelianError):
    pass


class AuthError(ChelianError):
    pass
