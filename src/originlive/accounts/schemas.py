"""API shapes of the accounts feature."""

from pydantic import BaseModel, ConfigDict, EmailStr, Field, field_validator

from originlive.accounts.models import Role


class UserCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    email: EmailStr
    password: str = Field(min_length=8, max_length=128)
    display_name: str = Field(min_length=1, max_length=80)

    @field_validator("display_name")
    @classmethod
    def _strip(cls, value: str) -> str:
        value = value.strip()
        if not value:
            raise ValueError("must not be blank")
        return value


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
