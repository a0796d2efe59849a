"""group chat bindings and callback receipts (retry dedupe shared by workers); the units.leader_id
foreign key that 0001 declared with use_alter (which create_table leaves out outside SQLite)

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


def _has_leader_fk() -> bool:
    keys = sa.inspect(op.get_bind()).get_foreign_keys('units')
    return any(k['constrained_columns'] == ['leader_id'] for k in keys)


def upgrade() -> None:
    if not _has_leader_fk():
        op.create_foreign_key('fk_unit_leader', 'units', 'people', ['leader_id'], ['id'])
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
    # the leader foreign key stays: it was always meant to exist (0001 declared it)
    with op.batch_alter_table('callback_receipts', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_callback_receipts_seen_at'))
    op.drop_table('callback_receipts')
    with op.batch_alter_table('group_chats', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_group_chats_name'))
    op.drop_table('group_chats')
