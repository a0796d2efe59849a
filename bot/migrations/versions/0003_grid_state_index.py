"""index hazards (grid_person_id, state): a grid member's "mine" list without a table scan

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22
"""
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_hazards_grid_state", "hazards", ["grid_person_id", "state"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_hazards_grid_state", table_name="hazards")
