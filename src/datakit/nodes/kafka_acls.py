"""Who may do what in a stack's Kafka, beyond its super users: the ACLs datakit grants.

The brokers run StandardAuthorizer (kafka_conf.py) and allow nothing without an ACL. The
application user gets what the stack's topics need and no more: Write, Read and Describe
on each topic (literal names, so a topic created later is not its own) and Read on the
consumer groups whose ids start with the stack's group prefix. Creating, deleting or
altering a topic stays with the admin.

props: as for kafka_cluster (brokers or bootstrap, admin_user/admin_password, app_user),
name (the topic), group_prefix.
"""

from __future__ import annotations

from datakit.nodes.kafka_cluster import _Admin

TOPIC_OPERATIONS = ("READ", "WRITE", "DESCRIBE")


def _bindings(props: dict) -> list:
    from confluent_kafka.admin import (
        AclBinding,
        AclOperation,
        AclPermissionType,
        ResourcePatternType,
        ResourceType,
    )

    principal = f"User:{props['app_user']}"
    allow = AclPermissionType.ALLOW
    out = [AclBinding(ResourceType.TOPIC, props["name"], ResourcePatternType.LITERAL,
                      principal, "*", getattr(AclOperation, op), allow)
           for op in TOPIC_OPERATIONS]
    if props.get("group_prefix"):
        out.append(AclBinding(ResourceType.GROUP, props["group_prefix"],
                              ResourcePatternType.PREFIXED, principal, "*",
                              AclOperation.READ, allow))
    return out


def grant_app(props: dict, *, timeout: float = 30.0) -> list[str]:
    """Grant the app user its topic's and groups' ACLs (creating one that exists is a
    no-op); what was granted, as `OPERATION TYPE:NAME` lines."""
    admin = _Admin(props)
    bindings = _bindings(props)
    for future in admin.client.create_acls(bindings, request_timeout=timeout).values():
        admin.result(future, timeout)
    return [f"{b.operation.name} {b.restype.name}:{b.name}" for b in bindings]


def revoke_topic(props: dict, *, timeout: float = 30.0) -> None:
    """Remove every ACL on the topic (before it is deleted: a new topic of the same name
    must not inherit them)."""
    from confluent_kafka.admin import (
        AclBindingFilter,
        AclOperation,
        AclPermissionType,
        ResourcePatternType,
        ResourceType,
    )

    admin = _Admin(props)
    spec = AclBindingFilter(ResourceType.TOPIC, props["name"], ResourcePatternType.LITERAL,
                            None, None, AclOperation.ANY, AclPermissionType.ANY)
    for future in admin.client.delete_acls([spec], request_timeout=timeout).values():
        admin.result(future, timeout)


def granted(props: dict, principal: str, *, timeout: float = 10.0) -> list[str]:
    """The ACLs that name `principal` (e.g. "User:app"), as `OPERATION TYPE:NAME` lines."""
    from confluent_kafka.admin import (
        AclBindingFilter,
        AclOperation,
        AclPermissionType,
        ResourcePatternType,
        ResourceType,
    )

    admin = _Admin(props)
    spec = AclBindingFilter(ResourceType.ANY, None, ResourcePatternType.ANY, principal, None,
                            AclOperation.ANY, AclPermissionType.ANY)
    found = admin.result(admin.client.describe_acls(spec, request_timeout=timeout), timeout)
    return sorted(f"{b.operation.name} {b.restype.name}:{b.name}" for b in found)
