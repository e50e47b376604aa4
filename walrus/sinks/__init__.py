"""Sinks: where ``walrus forward`` sends a log's entries (NATS JetStream is the built-in one).

A plugin adds a sink by returning a :class:`walrus.plugins.SinkSpec` from its
``walrus_register_sinks`` hook. The subject names used for topics are reversible:
:func:`encode_topic` and :func:`decode_topic`.
"""

from ._base import ForwardProgress, Sink, Source
from ._names import decode_topic, encode_topic

__all__ = ["ForwardProgress", "Sink", "Source", "decode_topic", "encode_topic"]
