"""Known DICOM peers (C-MOVE destinations, forward targets), kept in the database."""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete as sql_delete
from sqlalchemy import select
from sqlalchemy.orm import Session

from pacs_ai.archive.schema import RemoteNode
from pacs_ai.config import valid_ae_title


class NodeError(ValueError):
    """A node that cannot be added or found; the message names the problem."""


def get_by_ae_title(*, session: Session, ae_title: str) -> RemoteNode | None:
    """The node with this AE title, or None."""
    return session.execute(
        select(RemoteNode).where(RemoteNode.ae_title == ae_title)
    ).scalar_one_or_none()


def list_all(*, session: Session) -> list[RemoteNode]:
    """Every known node, by AE title."""
    return list(session.execute(select(RemoteNode).order_by(RemoteNode.ae_title)).scalars())


def create_or_update(
    *, session: Session, ae_title: str, host: str, port: int, description: str = ""
) -> RemoteNode:
    """Add a node, or change the address of the one with this AE title."""
    try:
        title = valid_ae_title(ae_title)
    except ValueError as exc:
        raise NodeError(str(exc)) from exc
    if not 0 < port < 65536:
        raise NodeError(f"port {port} is not in 1-65535")
    if not host.strip():
        raise NodeError("host is empty")
    node = get_by_ae_title(session=session, ae_title=title)
    if node is None:
        node = RemoteNode(ae_title=title, host=host.strip(), port=port, description=description)
        session.add(node)
    else:
        node.host, node.port, node.description = host.strip(), port, description
    session.flush()
    return node


def delete(*, session: Session, ae_title: str) -> None:
    """Forget a node; NodeError when there is none with this AE title."""
    result: Any = session.execute(sql_delete(RemoteNode).where(RemoteNode.ae_title == ae_title))
    if result.rowcount == 0:
        raise NodeError(f"no node with AE title {ae_title!r}")
