"""API shapes of the accounts feature."""

from typing import Annotated

from pydantic import BaseModel, ConfigDict, EmailStr, Field

from originlive.accounts.models import Role
from originlive.text import one_line


class UserCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    email: EmailStr
    password: str = Field(min_length=8, max_length=128)
    # Shown beside every comment the user makes: a name others must recognise.
    display_name: Annotated[str, one_line(80)]


class User(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    email: str
    display_name: str
    roles: list[Role]


class Token(BaseModel):
    access_token: str
    token_type: str = "bearer"
    expires_in: int
