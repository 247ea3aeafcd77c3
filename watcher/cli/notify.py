"""``watcher notify test``: send a clearly marked test notification through a real receiver.

Like amtool's ``alert add``: the receiver of watcher.yaml, with its template overrides, is sent a
sample incident (the one ``watcher render`` shows) marked as a test: ``[TEST]`` before its
summary, a description saying nothing is wrong, and the label ``test=true``. It goes straight to
the receiver's notifier, once: it never enters the outbox or the state file, so the daemon never
sees it and nothing is retried. The receiver's answer is printed; exit 0 when it took the
message, 1 when it did not, 2 for an unknown receiver or rule.
"""

from __future__ import annotations

import argparse
import sys
import uuid
from dataclasses import replace
from datetime import UTC, datetime

from watcher.cli.common import LoadFailedError, add_config_argument, load
from watcher.cli.render import sample_incident, sample_notification
from watcher.incidents.model import Event, Incident
from watcher.notify.base import Delivery, Notification, Notifier
from watcher.notify.registry import build_notifier
from watcher.rules.models import Rule
from watcher.templates import Templates

TEST_LABEL = ("test", "true")
MARK = "[TEST]"
DESCRIPTION = "A test notification sent by `watcher notify test`: nothing is wrong."
SAMPLE_RULE = "watcher-notify-test"

EPILOG = """\
examples:
  watcher notify test ml-slack                               a sample incident, marked [TEST]
  watcher notify test oncall-email --rule prediction-5xx-rate   that rule's templates and labels
  watcher notify test ml-slack --event resolved
"""


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "notify",
        help="send a test notification through a receiver (watcher notify test RECEIVER)",
        description="Talk to the receivers of watcher.yaml.",
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    test = actions.add_parser(
        "test",
        help="send a [TEST] notification through a receiver and report its answer",
        description=__doc__,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_config_argument(test)
    test.add_argument("receiver", metavar="RECEIVER", help="a receiver of the config")
    test.add_argument(
        "--rule", metavar="RULE", help="render the sample from this rule (default: a generic sample)"
    )
    test.add_argument(
        "--event", choices=[e.value for e in Event], default="firing", help="which message (default: firing)"
    )
    test.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    try:
        loaded = load(args.config, strict=False)
    except LoadFailedError:
        return 1
    receiver = loaded.config.receivers.get(args.receiver)
    if receiver is None:
        known = ", ".join(sorted(loaded.config.receivers)) or "none"
        print(
            f"watcher notify test: no receiver named {args.receiver!r} (receivers: {known})", file=sys.stderr
        )
        return 2
    rules = {rule.name: rule for rule in loaded.rules}
    rule = rules.get(args.rule) if args.rule else sample_rule(next(iter(loaded.config.sources), "test"))
    if rule is None:
        known = ", ".join(sorted(rules)) or "none"
        print(f"watcher notify test: no rule named {args.rule!r} (rules: {known})", file=sys.stderr)
        return 2
    templates = Templates(loaded.config.templates, loaded.rules, loaded.config.sources)
    notifier = build_notifier(args.receiver, receiver, templates)
    notification = marked_notification(rule, Event(args.event), args.receiver)
    where = f"{args.receiver} ({receiver.kind})"
    return report(where, deliver(notifier, notification))


def sample_rule(source: str) -> Rule:
    """The rule a test notification is rendered from when no ``--rule`` is given."""
    return Rule.model_validate(
        {
            "name": SAMPLE_RULE,
            "source": source,
            "threshold": {"above": 100},
            "severity": "info",
            "annotations": {"summary": "test notification from watcher"},
        }
    )


def marked_notification(rule: Rule, event: Event, receiver: str) -> Notification:
    """A sample incident of ``rule`` marked as a test, with an id and thread of its own (so a
    Slack test never threads under, or is taken for, a real incident's message)."""
    now = datetime.now(UTC).replace(microsecond=0)
    group = dict.fromkeys(rule.group_by, "example")
    incident = marked(sample_incident(rule, event, now, group))
    notification = sample_notification(incident, event, now, receiver)
    key = uuid.uuid4().hex[:12]
    return replace(notification, id=f"notify-test-{key}", thread_key=f"notify-test|{key}")


def marked(incident: Incident) -> Incident:
    annotations = dict(incident.annotations)
    summary = annotations.get("summary") or f"{incident.rule} (sample incident)"
    annotations["summary"] = f"{MARK} {summary}"
    annotations["description"] = DESCRIPTION
    return incident.evolve(labels={**incident.labels, TEST_LABEL[0]: TEST_LABEL[1]}, annotations=annotations)


def deliver(notifier: Notifier, notification: Notification) -> list[Delivery]:
    """The answers to the message and to each follow-up step it asked for (a Slack chart)."""
    answers: list[Delivery] = []
    pending = [notification]
    while pending:
        step = pending.pop(0)
        try:
            answer = notifier.send(step)
        except Exception as exc:
            answer = Delivery(ok=False, error=f"{type(exc).__name__}: {exc}")
        answers.append(answer)
        if not answer.ok:
            break
        pending += list(answer.followups)
    return answers


def report(where: str, answers: list[Delivery]) -> int:
    last = answers[-1]
    if last.ok:
        steps = "" if len(answers) == 1 else f" ({len(answers)} steps: the message and its chart)"
        ref = "".join(f", {key}={value}" for key, value in (answers[0].ref or {}).items())
        print(f"test notification delivered to {where}{steps}{ref}")
        return 0
    step = "" if len(answers) == 1 else " (the message was delivered, a follow-up step failed)"
    print(
        f"watcher notify test: {where} did not take the test notification{step}: {why(last)}", file=sys.stderr
    )
    return 1


def why(answer: Delivery) -> str:
    text = answer.error or "no reason given"
    if answer.maybe_sent:
        return f"{text} (no answer came back: it may have arrived)"
    if answer.permanent:
        return f"{text} (retrying will not help)"
    if answer.retry_after is not None:
        return f"{text} (the service asked to retry after {answer.retry_after:g}s)"
    return text
