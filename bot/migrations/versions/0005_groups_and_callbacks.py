"""group chat bindings and callback receipts (retry dedupe shared by workers)

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23 01:20:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('group_chats',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=60), nullable=False),
    sa.Column('channel', sa.String(length=20), nullable=False),
    sa.Column('chat', sa.String(length=200), nullable=False),
    sa.Column('bound_by', sa.Integer(), nullable=True),
    sa.Column('bound_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['bound_by'], ['people.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('name', 'channel'),
    sa.UniqueConstraint('channel', 'chat')
    )
    with op.batch_alter_table('group_chats', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_group_chats_name'), ['name'], unique=False)

    op.create_table('callback_receipts',
    sa.Column('key', sa.String(length=200), nullable=False),
    sa.Column('seen_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('key')
    )
    with op.batch_alter_table('callback_receipts', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_callback_receipts_seen_at'), ['seen_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('callback_receipts', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_callback_receipts_seen_at'))
    op.drop_table('callback_receipts')
    with op.batch_alter_table('group_chats', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_group_chats_name'))
    op.drop_table('group_chats')
