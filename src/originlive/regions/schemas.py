"""API shapes of the regions feature."""

from pydantic import BaseModel, ConfigDict, Field

from originlive.regions.models import RegionLevel


class Region(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    code: str
    name: str
    level: RegionLevel
    parent_code: str | None


class RegionCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    code: str = Field(
        pattern=r"^[0-9]{6,12}$", description="Statistical code of the township or village."
    )
    name: str = Field(min_length=1, max_length=80)
    parent_code: str = Field(pattern=r"^[0-9]{6,12}$")
