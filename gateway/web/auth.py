"""Bearer JWTs (HS256): issuing, verifying, scopes and site access."""

from __future__ import annotations

import hashlib
import re
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import jwt

# The scopes live in core (the CLI's help texts need them without aiohttp); the `as` re-exports
# them here, where the handlers and tests import them.
from gateway.core.access import COMMAND_SCOPE as COMMAND_SCOPE  # noqa: PLC0414
from gateway.core.access import ENVIRONMENTS, LIVE_ENV, TEST_ENV
from gateway.core.access import KNOWN_SCOPES as KNOWN_SCOPES  # noqa: PLC0414
from gateway.core.access import MAX_TTL_S as MAX_TTL_S  # noqa: PLC0414
from gateway.core.access import READ_SCOPE as READ_SCOPE  # noqa: PLC0414
from gateway.core.access import STORM_ADMIN_SCOPE as STORM_ADMIN_SCOPE  # noqa: PLC0414
from gateway.web.errors import MissingScopes, NotFound, TokenExpired, Unauthenticated

_ALGORITHM = "HS256"
_TTL = re.compile(r"^(\d{1,12})([smhdw]?)$")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 604_800}
_NOT_OURS = ("invalid access token: it is malformed, altered or not issued by this gateway; "
             "get a new one with `energy-gateway token issue`")
_NOT_YET_VALID = "invalid access token: it is not valid yet; check the clocks of issuer and gateway"


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: the verified claims of their token."""

    sub: str
    scopes: frozenset[str]
    sites: frozenset[int] | None  # None: every site
    plan: str | None
    key: str  # identifies the token for rate limiting
    expires_at: float  # unix time
    sandbox: bool = False  # a test token (claim env "test"): sandbox sites only

    def reaches(self, energy_site_id: int, *, sandbox: bool) -> bool:
        """Whether the token may see this site: named by it, and of the token's environment
        (a test token reaches sandbox sites only, a live token never reaches them)."""
        return self.sandbox == sandbox and self.can_reach(energy_site_id)

    def require(self, scope: str) -> None:
        """Raise 403 ``Unauthorized missing scopes`` unless the token carries ``scope``."""
        if scope not in self.scopes:
            raise MissingScopes("")

    def can_reach(self, energy_site_id: int) -> bool:
        """Whether the token names this site."""
        return self.sites is None or energy_site_id in self.sites

    def require_site(self, energy_site_id: int, *, sandbox: bool = False) -> None:
        """Raise 404 for a site outside the token (or its environment), exactly as for an
        unknown site."""
        if not self.reaches(energy_site_id, sandbox=sandbox):
            raise NotFound(f"energy site {energy_site_id} not found")


def parse_ttl(text: str) -> int:
    """``"30d"``, ``"12h"``, ``"90m"``, ``"45s"`` or plain seconds → seconds."""
    match = _TTL.match(text.strip())
    if not match or int(match.group(1)) <= 0:
        raise ValueError(f"invalid ttl {text!r}: use a positive number with s, m, h, d or w")
    ttl_s = int(match.group(1)) * _UNITS[match.group(2)]
    if ttl_s > MAX_TTL_S:
        raise ValueError(f"invalid ttl {text!r}: the longest is 365d (1 year)")
    return ttl_s


def token_claims(
    *,
    sub: str,
    scopes: Iterable[str],
    sites: Iterable[int] | None,
    ttl_s: int,
    now_s: float,
    plan: str | None = None,
    env: str = LIVE_ENV,
) -> dict[str, Any]:
    """The claims of a new bearer token (a fresh ``jti``); ValueError names what is wrong.

    ``env="test"`` makes a sandbox token (claim ``env``); a live token carries no ``env``, as
    every token issued before sandboxes existed.
    """
    if env not in ENVIRONMENTS:
        raise ValueError(f"unknown env {env!r}; use {' or '.join(ENVIRONMENTS)}")
    scope_list = sorted(set(scopes))
    known = ", ".join(sorted(KNOWN_SCOPES))
    if not scope_list:
        raise ValueError(f"a token needs at least one scope; known scopes: {known}")
    unknown = sorted(set(scope_list) - KNOWN_SCOPES)
    if unknown:
        raise ValueError(f"unknown scopes: {', '.join(unknown)}; known scopes: {known}")
    site_ids = None if sites is None else sorted(set(sites))
    if site_ids is not None and not site_ids:
        raise ValueError("a token needs at least one site (or sites=None for every site)")
    if not 0 < ttl_s <= MAX_TTL_S:
        raise ValueError(f"ttl {ttl_s} s is outside 1 s to 365 days")
    claims: dict[str, Any] = {
        "sub": sub,
        "scp": scope_list,
        "iat": int(now_s),
        "exp": int(now_s) + ttl_s,
        "jti": uuid.uuid4().hex,
        "sites": "*" if site_ids is None else site_ids,
        "ou_code": "NA",  # HA's tesla_fleet reads the region from this claim
    }
    if plan is not None:
        claims["plan"] = plan
    if env == TEST_ENV:
        claims["env"] = TEST_ENV
    return claims


def sign(secret: str, claims: dict[str, Any]) -> str:
    """The bearer token carrying ``claims``, signed with ``secret``."""
    return jwt.encode(claims, secret, algorithm=_ALGORITHM)


def issue_token(
    secret: str,
    *,
    sub: str,
    scopes: Iterable[str],
    sites: Iterable[int] | None,
    ttl_s: int,
    now_s: float,
    plan: str | None = None,
    env: str = LIVE_ENV,
) -> str:
    """A signed bearer token; ``sites=None`` reaches every site (claim ``"*"``)."""
    return sign(secret, token_claims(sub=sub, scopes=scopes, sites=sites, ttl_s=ttl_s,
                                     now_s=now_s, plan=plan, env=env))


def verify_token(secret: str, token: str) -> Principal:
    """Verify signature and expiry; raise 401 errors the Fleet way."""
    try:
        claims = jwt.decode(
            token, secret, algorithms=[_ALGORITHM], options={"require": ["exp", "sub", "scp"]}
        )
    except jwt.ExpiredSignatureError:
        raise TokenExpired("the access token has expired") from None
    except jwt.ImmatureSignatureError:
        raise Unauthenticated(_NOT_YET_VALID) from None
    except jwt.InvalidTokenError:
        # PyJWT's own words ("Invalid header padding", "Signature verification failed") describe
        # the verifier, not what the client should do: one fixed description for every cause.
        raise Unauthenticated(_NOT_OURS) from None
    scopes = claims["scp"]
    if isinstance(scopes, str):
        scopes = scopes.split()
    if not isinstance(scopes, list) or not all(isinstance(s, str) for s in scopes):
        raise Unauthenticated("invalid access token: scp must be a list of strings")
    raw_sites = claims.get("sites", "*")
    sites: frozenset[int] | None
    if raw_sites == "*":
        sites = None
    elif isinstance(raw_sites, list) and all(isinstance(s, int) for s in raw_sites):
        sites = frozenset(raw_sites)
    else:
        raise Unauthenticated("invalid access token: sites must be \"*\" or a list of ids")
    env = claims.get("env", LIVE_ENV)
    if env not in ENVIRONMENTS:
        raise Unauthenticated('invalid access token: env must be "live" or "test"')
    key = str(claims.get("jti") or hashlib.sha256(token.encode()).hexdigest()[:32])
    plan = claims.get("plan")
    return Principal(
        sub=str(claims["sub"]), scopes=frozenset(scopes), sites=sites,
        plan=plan if isinstance(plan, str) else None, key=key, expires_at=float(claims["exp"]),
        sandbox=env == TEST_ENV,
    )


class TokenVerifier:
    """verify_token with a bounded cache: an HMAC check and claim parsing per request cost more
    than the rest of a live_status answer, and clients reuse one token for hours."""

    def __init__(self, secret: str, *, max_entries: int = 4096) -> None:
        self._secret = secret
        self._max_entries = max_entries
        self._cache: dict[str, Principal] = {}
        self._revoked: frozenset[str] = frozenset()

    def set_revoked(self, jtis: frozenset[str]) -> None:
        """Replace the deny-list: tokens with these ``jti`` answer 401 from now on."""
        self._revoked = jtis

    def verify(self, token: str, now_s: float) -> Principal:
        """The token's principal; 401 errors as verify_token raises them, and for revoked ones."""
        principal = self._cache.get(token)
        if principal is not None:
            if now_s >= principal.expires_at:
                del self._cache[token]
                raise TokenExpired("the access token has expired")
        else:
            principal = verify_token(self._secret, token)
            if len(self._cache) >= self._max_entries:
                self._cache.clear()
            self._cache[token] = principal
        if principal.key in self._revoked:  # key is the jti for every token that carries one
            raise Unauthenticated("the access token has been revoked")
        return principal


def bearer(header: str | None) -> str:
    """The token of an ``Authorization: Bearer ...`` header, or 401."""
    if not header:
        raise Unauthenticated("missing Authorization header", token_presented=False)
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthenticated("Authorization must be 'Bearer <token>'", token_presented=False)
    return token.strip()
