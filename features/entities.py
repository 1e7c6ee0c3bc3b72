"""Entities: the join keys every feature view hangs off (names from lambdarec.names)."""

from feast import Entity, ValueType

from lambdarec import names

user = Entity(name=names.USER_ENTITY, join_keys=[names.USER_ID], value_type=ValueType.STRING, description="A shopper.")
item = Entity(name=names.ITEM_ENTITY, join_keys=[names.ITEM_ID], value_type=ValueType.STRING, description="A product.")
session = Entity(
    name=names.SESSION_ENTITY,
    join_keys=[names.SESSION_ID],
    value_type=ValueType.STRING,
    description="A visit: the shop's session id, suffixed #n after 30 minutes idle.",
)
