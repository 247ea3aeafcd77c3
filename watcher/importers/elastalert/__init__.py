"""ElastAlert 2 rules into watcher rules (``watcher import elastalert``).

The facts come from ElastAlert 2's own schema (``elastalert/schema.yaml``) and rule types
(``elastalert/ruletypes.py``); elastalert2 itself is not a dependency. ``folder`` drives the
import, ``convert`` the options every rule shares, ``rule_types`` / ``filters`` /
``query_string`` / ``texts`` / ``alerters`` / ``sources`` one concern each, ``report`` the lines.
See docs/migrating-from-elastalert.md.
"""
