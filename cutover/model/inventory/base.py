"""The inventory's building blocks: field types, the strict base model, secret references.

Also `InventoryError` (every problem one line) and `field_path`, how a location is written
in those lines (`mail.accounts[0].user`).
"""

from __future__ import annotations

import ipaddress
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    PlainValidator,
    PrivateAttr,
    WithJsonSchema,
    model_validator,
)

from cutover.model.secrets import Secret, SecretError


def _ip_address(value: object) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    if isinstance(value, (ipaddress.IPv4Address, ipaddress.IPv6Address)):
        return value
    try:
        return ipaddress.ip_address(value if isinstance(value, str) else "")
    except ValueError:
        raise ValueError(f"not a valid IP address: {value!r}") from None


# One validator for both families: a union would report the error twice.
IPAddress = Annotated[
    ipaddress.IPv4Address | ipaddress.IPv6Address,
    PlainValidator(_ip_address),
    PlainSerializer(str),
    WithJsonSchema({"type": "string", "anyOf": [{"format": "ipv4"}, {"format": "ipv6"}]}),
]


def _ip_addresses(value: object) -> tuple[ipaddress.IPv4Address | ipaddress.IPv6Address, ...]:
    """One address, or a list of addresses of either family (a dual-stack host)."""
    items = value if isinstance(value, (list, tuple)) else [value]
    if not items:
        raise ValueError("needs at least one IP address")
    found: list[ipaddress.IPv4Address | ipaddress.IPv6Address] = []
    for item in items:
        address = _ip_address(item)
        if address in found:
            raise ValueError(f"{address} is listed twice")
        found.append(address)
    return tuple(found)


# `address: 203.0.113.10` or `address: [203.0.113.10, "2001:db8::10"]`.
IPAddresses = Annotated[
    tuple[ipaddress.IPv4Address | ipaddress.IPv6Address, ...],
    PlainValidator(_ip_addresses),
    PlainSerializer(lambda value: [str(a) for a in value] if len(value) > 1 else str(value[0])),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "string", "anyOf": [{"format": "ipv4"}, {"format": "ipv6"}]},
                {
                    "type": "array",
                    "minItems": 1,
                    "uniqueItems": True,
                    "items": {"type": "string", "anyOf": [{"format": "ipv4"}, {"format": "ipv6"}]},
                },
            ]
        }
    ),
]
# Numbers are taken as written: a quoted "993" is a string, as the JSON Schema says.
Port = Annotated[int, Field(ge=1, le=65535, strict=True)]
Seconds = Annotated[float, Field(gt=0, le=3600, strict=True)]
Count = Annotated[int, Field(ge=1, strict=True)]
# Where a field is in the inventory: ("mail", "accounts", 0, "user").
Loc = tuple[str | int, ...]
# An environment variable's name, as a shell would accept it.
ENV_NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"

# Keys that would carry a secret inline. The inventory is often committed to
# git and copied into CI artifacts, so these are refused outright.
INLINE_SECRET_KEYS = frozenset({"password", "passwd", "secret", "token", "key_passphrase"})


class InventoryError(Exception):
    """Problems with the inventory, each one line an operator can act on.

    >>> str(InventoryError("inv.yaml:3: old.address: not a valid IP address: 'x'"))
    "inv.yaml:3: old.address: not a valid IP address: 'x'"
    """

    def __init__(self, *problems: str) -> None:
        super().__init__(*problems)
        self.problems: tuple[str, ...] = problems

    def __str__(self) -> str:
        return "\n".join(self.problems)


class Protocol(StrEnum):
    SMTP = "smtp"
    IMAP = "imap"
    POP3 = "pop3"
    HTTP = "http"
    MYSQL = "mysql"


class TlsMode(StrEnum):
    NONE = "none"
    STARTTLS = "starttls"
    IMPLICIT = "implicit"


class Strict(BaseModel):
    """Base model: unknown keys are errors, so a typo never passes silently."""

    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)

    @model_validator(mode="before")
    @classmethod
    def _no_inline_secrets(cls, data: Any) -> Any:
        if isinstance(data, dict):
            for key in data:
                if isinstance(key, str) and key.lower() in INLINE_SECRET_KEYS:
                    raise ValueError(
                        f"inline secret '{key}' is not allowed: use {key}_env: VARIABLE "
                        f"or {key}_file: PATH"
                    )
        return data


ONE_SECRET_REFERENCE: dict[str, Any] = {
    "oneOf": [
        {"required": ["password_env"]},
        {"required": ["password_file"]},
        {"not": {"anyOf": [{"required": ["password_env"]}, {"required": ["password_file"]}]}},
    ]
}
EXACTLY_ONE_SECRET_REFERENCE: dict[str, Any] = {"oneOf": ONE_SECRET_REFERENCE["oneOf"][:2]}


class SecretRef(Strict):
    """Mixin for objects that carry a password by reference."""

    model_config = ConfigDict(json_schema_extra=ONE_SECRET_REFERENCE)

    password_env: Annotated[str | None, Field(pattern=ENV_NAME_PATTERN)] = Field(
        default=None,
        description="name of the environment variable holding the password "
        "(not both password_env and password_file)",
    )
    password_file: Path | None = Field(
        default=None,
        description="file whose first line is the password; relative to the inventory, "
        "~ is expanded (not both password_env and password_file)",
    )
    _password: Secret | None = PrivateAttr(default=None)

    @model_validator(mode="after")
    def _one_reference(self) -> SecretRef:
        if self.password_env and self.password_file:
            raise ValueError("give password_env or password_file, not both")
        return self

    @property
    def password(self) -> Secret:
        """The resolved secret (resolved when the inventory is loaded)."""
        if self._password is None:
            raise SecretError("no password reference (password_env or password_file) given")
        return self._password

    @property
    def has_password(self) -> bool:
        return self._password is not None


def field_path(loc: Loc) -> str:
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text or "(top level)"
