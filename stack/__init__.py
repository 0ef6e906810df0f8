"""The embedded local stack: MongoDB stand-in, Kafka (KRaft), CDC, all on 127.0.0.1.

``with LocalStack(settings) as stack:`` starts what is not running yet and yields the settings
with every address filled in; leaving the block stops only what it started.
"""

from stack.local import LocalStack, StackError

__all__ = ["LocalStack", "StackError"]
