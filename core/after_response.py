"""Work and mails after the response: one sender thread per process.

A request that queued mails (``core.mail.queue_mail``) hands their ids to this thread once the
response is out, so a slow or hung mail server never shows in the answer or holds a worker; work
deferred with ``after_response`` (finding out whether an address has an account before mailing it)
runs there too. What the thread has not done when the process ends stays pending in the outbox for
``jobs run``.
"""

import logging
import os
import queue
import threading

from flask import current_app, g, has_request_context

from core.mail import deliver_pending

log = logging.getLogger("fundus.mail")


class _Sender:
    """One daemon thread per process that sends the mails requests queued, after their responses.

    Handing the work to this thread, instead of to the response's close callback, keeps the
    request's worker free whatever the mail server does, and does not depend on the WSGI server
    calling ``close()``: Werkzeug's development server skips it when the browser resets the
    connection after a redirect, and the mails then waited for ``jobs run``. What the thread has
    not sent when the process ends stays pending in the outbox for the job.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pid: int | None = None
        self._queue: queue.Queue = queue.Queue()

    def submit(self, app, func, *args) -> None:
        """Run ``func(*args)`` in the thread, in ``app``'s context."""
        with self._lock:
            if self._pid != os.getpid():  # first use in this process (or a forked worker)
                self._pid = os.getpid()
                self._queue = queue.Queue()
                threading.Thread(target=self._run, args=(self._queue,), name="fundus-mail", daemon=True).start()
            self._queue.put((app, func, args))

    @staticmethod
    def _run(jobs: queue.Queue) -> None:
        while True:
            app, func, args = jobs.get()
            try:
                with app.app_context():
                    func(*args)
            except Exception:  # never let one job stop the thread; mails stay in the outbox for the job
                log.exception("Work after the response failed (%s); queued mails are retried by jobs run",
                              getattr(func, "__qualname__", func))
            finally:
                jobs.task_done()

    def wait(self) -> None:
        """Return once everything submitted so far is sent or given up (tests, before they clean up)."""
        if self._pid == os.getpid():
            self._queue.join()


sender = _Sender()


def after_response(func, *args) -> None:
    """Run ``func(*args)`` after this request's response is out, in the sender thread, and send the
    mails it queues: for work whose duration must not show in the answer, such as finding out
    whether an address has an account before mailing it. Outside a request it runs at once. Work
    that has not run when the process ends is lost: use it only for what the person can simply ask
    for again (a link by mail), never for what they submitted."""
    if has_request_context():
        g.setdefault("after_response", []).append((func, args))
        g.mailed = True  # counts against the address's limit (core.limits)
    else:
        func(*args)


def _run_deferred(func, args) -> None:
    g.collect_outbox = True
    func(*args)
    ids = g.pop("outbox_ids", None)
    if ids and current_app.config["MAIL_SEND_AFTER_REQUEST"]:
        deliver_pending(ids)


def deliver_after_response(response):
    """Hand the work deferred with ``after_response`` and the mails this request queued (committed
    by now) to the sender thread."""
    app = current_app._get_current_object()
    for func, args in g.pop("after_response", []):
        sender.submit(app, _run_deferred, func, args)
    ids = g.pop("outbox_ids", None)
    if ids and current_app.config["MAIL_SEND_AFTER_REQUEST"]:
        sender.submit(app, deliver_pending, ids)
    return response
