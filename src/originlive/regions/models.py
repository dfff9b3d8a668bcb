"""Tables of the regions feature."""

import enum

from sqlalchemy import Enum, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from originlive.db import Base


class RegionLevel(enum.StrEnum):
    PROVINCE = "province"
    PREFECTURE = "prefecture"
    COUNTY = "county"
    TOWNSHIP = "township"
    VILLAGE = "village"

    @property
    def depth(self) -> int:
        """0 for a province, 4 for a village."""
        return list(RegionLevel).index(self)


class Region(Base):
    """A node of the tree; ``path`` lists the codes from the province down, for subtree queries."""

    __tablename__ = "regions"
    __table_args__ = (
        Index("ix_regions_parent_code", "parent_code"),
        # Pattern ops so PostgreSQL can use the index for "path LIKE 'prefix%'".
        Index("ix_regions_path", "path", postgresql_ops={"path": "varchar_pattern_ops"}),
        Index("ix_regions_name", "name"),
    )

    code: Mapped[str] = mapped_column(String(12), primary_key=True)
    name: Mapped[str] = mapped_column(String(80))
    level: Mapped[RegionLevel] = mapped_column(
        Enum(
            RegionLevel,
            native_enum=False,
            length=16,
            values_callable=lambda e: [m.value for m in e],
        )
    )
    parent_code: Mapped[str | None] = mapped_column(ForeignKey("regions.code"))
    # "530000/530100/530102/": every region below X has a path starting with X's path.
    path: Mapped[str] = mapped_column(String(160))
    # Shipped with the platform (GB/T 2260) rather than added by an operator.
    official: Mapped[bool] = mapped_column(default=False)
