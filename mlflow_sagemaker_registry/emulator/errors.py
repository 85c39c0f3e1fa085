"""Errors the emulator returns, each carrying the ``__type`` code SageMaker's JSON protocol would send.

    EmulatorError                 base: code + message, HTTP 400 unless said otherwise
    ├── ValidationError           ValidationException: a rule of the service model or of SageMaker broken
    ├── SerializationError        SerializationException: a JSON value of the wrong type, an unknown member
    ├── ConflictError             ConflictException: the entity is in a state that forbids the change
    ├── UnknownOperationError     UnknownOperationException: no such SageMaker operation
    ├── NotEmulatedError          NotEmulatedException: real SageMaker has it, this emulator does not
    └── InjectedFault             any code a test asked for (throttling, 5xx...)

botocore turns every one of them into a ``ClientError`` whose ``Error.Code`` is the code above, exactly as
it does for real SageMaker answers.
"""

from __future__ import annotations


class EmulatorError(Exception):
    """An error answer: ``{"__type": code, "message": message}`` with HTTP ``status``."""

    code = "InternalFailure"
    status = 400

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ValidationError(EmulatorError):
    code = "ValidationException"


class SerializationError(EmulatorError):
    code = "SerializationException"


class ConflictError(EmulatorError):
    code = "ConflictException"


class UnknownOperationError(EmulatorError):
    code = "UnknownOperationException"


class NotEmulatedError(EmulatorError):
    """The request is valid for SageMaker, but the emulator does not model it.

    HTTP 400, not 501: botocore retries 5xx answers, which would only slow the failing test down.
    """

    code = "NotEmulatedException"


class InjectedFault(EmulatorError):
    """An error a test injected with ``RegistryBackend.inject_fault``."""

    def __init__(self, code: str, message: str, status: int) -> None:
        super().__init__(message)
        self.code = code
        self.status = status
