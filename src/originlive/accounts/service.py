"""Rules of accounts: registration, login, tokens, roles and the audit log."""

from datetime import timedelta
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from originlive.accounts import security
from originlive.accounts.models import AccessToken, AuditEntry, Role, TokenKind, User, UserRole
from originlive.db import utcnow
from originlive.errors import Conflict


def normalize_email(email: str) -> str:
    """Emails are compared case-insensitively and without surrounding blanks."""
    return email.strip().lower()


async def get(session: AsyncSession, *, user_id: int) -> User | None:
    """The user with its roles loaded, or None."""
    return await session.scalar(
        select(User).where(User.id == user_id).options(selectinload(User.role_rows))
    )


async def get_by_email(session: AsyncSession, *, email: str) -> User | None:
    """The user with that email, roles loaded, or None."""
    return await session.scalar(
        select(User)
        .where(User.email == normalize_email(email))
        .options(selectinload(User.role_rows))
    )


async def create(
    session: AsyncSession,
    *,
    email: str,
    password: str,
    display_name: str,
    roles: tuple[Role, ...] = (Role.BUYER,),
) -> User:
    """Register a user; every user is a buyer. Conflict if the email is taken."""
    email = normalize_email(email)
    if await get_by_email(session, email=email) is not None:
        raise Conflict("An account with this email already exists.")
    user = User(
        email=email,
        password_hash=await security.hash_password(password),
        display_name=display_name,
        role_rows=[UserRole(role=r) for r in {Role.BUYER, *roles}],
    )
    session.add(user)
    try:
        async with session.begin_nested():
            await session.flush()
    except IntegrityError as exc:  # a concurrent registration won the race
        raise Conflict("An account with this email already exists.") from exc
    return user


async def authenticate(session: AsyncSession, *, email: str, password: str) -> User | None:
    """The active user if the password is right, else None."""
    user = await get_by_email(session, email=email)
    ok = await security.verify_password(user.password_hash if user else None, password)
    if user is None or not ok or not user.is_active:
        return None
    return user


async def grant_role(session: AsyncSession, *, user: User, role: Role) -> None:
    """Give the user a role if it lacks it; ``user.role_rows`` must be loaded."""
    if not user.has_role(role):
        user.role_rows.append(UserRole(role=role))
        await session.flush()


async def issue_token(
    session: AsyncSession, *, user: User, kind: TokenKind, ttl_seconds: int
) -> str:
    """Create a bearer token or cookie session and return its secret (shown once)."""
    token = security.new_token()
    session.add(
        AccessToken(
            token_hash=security.token_digest(token),
            user_id=user.id,
            kind=kind,
            expires_at=utcnow() + timedelta(seconds=ttl_seconds),
        )
    )
    await session.flush()
    return token


async def user_for_token(session: AsyncSession, *, token: str, kind: TokenKind) -> User | None:
    """The active user behind an unexpired token of that kind, or None."""
    user = await session.scalar(
        select(User)
        .join(AccessToken, AccessToken.user_id == User.id)
        .where(
            AccessToken.token_hash == security.token_digest(token),
            AccessToken.kind == kind,
            AccessToken.expires_at > utcnow(),
            User.is_active.is_(True),
        )
        .options(selectinload(User.role_rows))
    )
    return user


async def revoke_token(session: AsyncSession, *, token: str) -> None:
    """Log out: the token stops working at once."""
    await session.execute(
        delete(AccessToken).where(AccessToken.token_hash == security.token_digest(token))
    )


async def record_audit(
    session: AsyncSession,
    *,
    actor: User | None,
    action: str,
    target_type: str,
    target_id: str | int,
    detail: dict[str, Any] | None = None,
) -> None:
    """Append an audit entry; operators' actions always get one."""
    session.add(
        AuditEntry(
            actor_id=actor.id if actor else None,
            action=action,
            target_type=target_type,
            target_id=str(target_id),
            detail=detail or {},
        )
    )
    await session.flush()


async def record_operator_act(
    session: AsyncSession,
    *,
    actor: User,
    action: str,
    target_type: str,
    target_id: str | int,
    detail: dict[str, Any] | None = None,
) -> None:
    """Audit what an operator did (invariant 7); owners and buyers acting on their own things
    are not logged."""
    if actor.has_role(Role.OPERATOR):
        await record_audit(
            session, actor=actor, action=action, target_type=target_type,
            target_id=target_id, detail=detail,
        )  # fmt: skip
