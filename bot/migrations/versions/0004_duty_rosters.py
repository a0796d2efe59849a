"""duty rosters and supervision items

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22 23:20:11.095276
"""
from alembic import op
import sqlalchemy as sa


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('duty_shifts',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('starts_at', sa.DateTime(), nullable=False),
    sa.Column('ends_at', sa.DateTime(), nullable=False),
    sa.Column('role', sa.String(length=10), nullable=False),
    sa.Column('person_id', sa.Integer(), nullable=False),
    sa.Column('phone', sa.String(length=30), nullable=False),
    sa.Column('unit_id', sa.Integer(), nullable=True),
    sa.Column('source', sa.String(length=200), nullable=False),
    sa.Column('checked_in_at', sa.DateTime(), nullable=True),
    sa.ForeignKeyConstraint(['person_id'], ['people.id'], ),
    sa.ForeignKeyConstraint(['unit_id'], ['units.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('day', 'person_id', 'starts_at')
    )
    with op.batch_alter_table('duty_shifts', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_duty_shifts_day'), ['day'], unique=False)
        batch_op.create_index(batch_op.f('ix_duty_shifts_person_id'), ['person_id'], unique=False)
        batch_op.create_index('ix_duty_shifts_starts', ['starts_at'], unique=False)

    op.create_table('supervision_items',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('code', sa.String(length=30), nullable=False),
    sa.Column('task', sa.Text(), nullable=False),
    sa.Column('owner_id', sa.Integer(), nullable=False),
    sa.Column('unit_id', sa.Integer(), nullable=True),
    sa.Column('deadline', sa.Date(), nullable=False),
    sa.Column('state', sa.String(length=10), nullable=False),
    sa.Column('created_by', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('done_at', sa.DateTime(), nullable=True),
    sa.Column('note', sa.Text(), nullable=False),
    sa.ForeignKeyConstraint(['created_by'], ['people.id'], ),
    sa.ForeignKeyConstraint(['owner_id'], ['people.id'], ),
    sa.ForeignKeyConstraint(['unit_id'], ['units.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('code')
    )
    with op.batch_alter_table('supervision_items', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_supervision_items_owner_id'), ['owner_id'], unique=False)
        batch_op.create_index('ix_supervision_state_deadline', ['state', 'deadline'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('supervision_items', schema=None) as batch_op:
        batch_op.drop_index('ix_supervision_state_deadline')
        batch_op.drop_index(batch_op.f('ix_supervision_items_owner_id'))

    op.drop_table('supervision_items')
    with op.batch_alter_table('duty_shifts', schema=None) as batch_op:
        batch_op.drop_index('ix_duty_shifts_starts')
        batch_op.drop_index(batch_op.f('ix_duty_shifts_person_id'))
        batch_op.drop_index(batch_op.f('ix_duty_shifts_day'))

    op.drop_table('duty_shifts')
