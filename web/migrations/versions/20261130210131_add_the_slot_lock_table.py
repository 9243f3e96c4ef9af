"""add the slot lock table

Revision ID: 20261130210131
Revises: 20261122093000
Create Date: 2026-11-30 21:01:31.915818
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "20261130210131"
down_revision: str | Sequence[str] | None = "20261122093000"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ = (sa, sqlmodel)  # autogenerate may or may not use them


def upgrade() -> None:
    # One row per slot, locked by every change to the slot's bookings (volunteers/bookings.py).
    op.create_table(
        "volunteer_slot_lock",
        sa.Column("slot_start", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("slot_start"),
    )


def downgrade() -> None:
    op.drop_table("volunteer_slot_lock")
