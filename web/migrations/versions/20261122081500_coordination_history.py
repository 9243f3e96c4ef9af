"""coordination: recorded routing events and the contact history

Revision ID: 20261122081500
Revises: 0001
Create Date: 2026-11-22
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "20261122081500"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "routing_event",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("line", sa.String(length=40), nullable=False),
        sa.Column("stream_id", sa.String(length=40), nullable=False),
        sa.Column("type", sa.String(length=32), nullable=False),
        sa.Column("at_ms", sa.BigInteger(), nullable=False),
        sa.Column("task_id", sa.String(length=80), nullable=False),
        sa.Column("volunteer_id", sa.String(length=80), nullable=False),
        sa.Column("data", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("line", "stream_id", name="uq_routing_event_stream"),
    )
    op.create_index("ix_routing_event_line_task", "routing_event", ["line", "task_id"])
    op.create_index("ix_routing_event_line_at", "routing_event", ["line", "at_ms"])
    op.create_table(
        "contact",
        sa.Column("line", sa.String(length=40), nullable=False),
        sa.Column("task_id", sa.String(length=80), nullable=False),
        sa.Column("day", sa.String(length=10), nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("departement", sa.String(length=3), nullable=False),
        sa.Column("region", sa.String(length=3), nullable=False),
        sa.Column("topic", sa.String(length=32), nullable=False),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.Column("resumed", sa.Boolean(), nullable=False),
        sa.Column("created_ms", sa.BigInteger(), nullable=True),
        sa.Column("first_offered_ms", sa.BigInteger(), nullable=True),
        sa.Column("assigned_ms", sa.BigInteger(), nullable=True),
        sa.Column("completed_ms", sa.BigInteger(), nullable=True),
        sa.Column("ended_ms", sa.BigInteger(), nullable=True),
        sa.Column("offers", sa.Integer(), nullable=False),
        sa.Column("declines", sa.Integer(), nullable=False),
        sa.Column("timeouts", sa.Integer(), nullable=False),
        sa.Column("transfers", sa.Integer(), nullable=False),
        sa.Column("level", sa.Integer(), nullable=False),
        sa.Column("ring", sa.Integer(), nullable=True),
        sa.Column("volunteer_id", sa.String(length=80), nullable=False),
        sa.Column("last_volunteer_id", sa.String(length=80), nullable=False),
        sa.Column("wait_ms", sa.BigInteger(), nullable=True),
        sa.Column("handle_ms", sa.BigInteger(), nullable=True),
        sa.Column("wrapup_ms", sa.BigInteger(), nullable=True),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.String(length=80), nullable=False),
        sa.Column("event_count", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("line", "task_id"),
    )
    op.create_index("ix_contact_line_day", "contact", ["line", "day"])


def downgrade() -> None:
    op.drop_index("ix_contact_line_day", table_name="contact")
    op.drop_table("contact")
    op.drop_index("ix_routing_event_line_at", table_name="routing_event")
    op.drop_index("ix_routing_event_line_task", table_name="routing_event")
    op.drop_table("routing_event")
