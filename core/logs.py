"""Log lines as JSON for log collectors (``LOG_FORMAT=json``): one object a line.

Each object holds the time (ISO 8601, UTC), the level, the logger's name, the message and, when the
record carries one, the exception with its traceback. Nothing else is added: no request data, no
client address, no process details, so a line holds no more personal data than its message.
"""

import json
import logging
from datetime import UTC, datetime


class JsonFormatter(logging.Formatter):
    """Format a record as one line of JSON: ``time``, ``level``, ``logger``, ``message``, ``exception``."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["exception"] = record.exc_text
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        # json.dumps escapes line breaks, so a message or traceback of many lines stays one line.
        return json.dumps(entry, ensure_ascii=False, default=str)


def use_json(*loggers: logging.Logger) -> None:
    """Give every handler of ``loggers`` the JSON formatter."""
    formatter = JsonFormatter()
    for logger in loggers:
        for handler in logger.handlers:
            handler.setFormatter(formatter)
