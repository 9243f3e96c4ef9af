"""callers: callback requests and chat transcripts

Revision ID: 20261122093000
Revises: 20261122090000
Create Date: 2026-11-22
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "20261122093000"
down_revision: str | Sequence[str] | None = "20261122090000"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "callback_request",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("departement", sa.String(length=3), nullable=False),
        sa.Column("skill", sa.String(length=32), nullable=False),
        sa.Column("caller_key", sa.String(length=40), nullable=False),
        sa.Column("phone_sealed", sa.String(), nullable=False),
        sa.Column("email_sealed", sa.String(), nullable=False),
        sa.Column("message_sealed", sa.String(), nullable=False),
        sa.Column("preferred_time", sa.String(length=120), nullable=False),
        sa.Column("first_name", sa.String(length=60), nullable=False),
        sa.Column("task_id", sa.String(length=40), nullable=False),
        sa.Column("queued_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_callback_request_state", "callback_request", ["state"])
    op.create_index("ix_callback_request_caller_key", "callback_request", ["caller_key"])
    op.create_index("ix_callback_request_task_id", "callback_request", ["task_id"])
    op.create_table(
        "chat_message",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("task_id", sa.String(length=40), nullable=False),
        sa.Column("stream_id", sa.String(length=40), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("author", sa.String(length=16), nullable=False),
        sa.Column("name", sa.String(length=60), nullable=False),
        sa.Column("volunteer_id", sa.String(length=40), nullable=False),
        sa.Column("text", sa.String(length=2000), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("task_id", "stream_id", name="uq_chat_message_stream"),
    )
    op.create_index("ix_chat_message_task_id", "chat_message", ["task_id"])


def downgrade() -> None:
    op.drop_index("ix_chat_message_task_id", table_name="chat_message")
    op.drop_table("chat_message")
    op.drop_index("ix_callback_request_task_id", table_name="callback_request")
    op.drop_index("ix_callback_request_caller_key", table_name="callback_request")
    op.drop_index("ix_callback_request_state", table_name="callback_request")
    op.drop_table("callback_request")
