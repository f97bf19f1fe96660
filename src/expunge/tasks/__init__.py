"""Tasks: what is specific to the kind of prediction a model makes — its targets, training loss, per-example loss,
headline metrics and parity criteria — one module per task, registered by decorator.

Requests, the retrain oracle, the store, the method and metric registries and the run record are shared by every
task; a task adds only what differs. Built in: ``classification`` (class labels, cross-entropy, accuracy),
``regression`` (real-valued targets, squared error) and ``graph`` (node classification on a graph, whose requests
delete nodes or edges). A dataset names its task (``Dataset.task``); methods and metrics declare the tasks they
support (``tasks = {...}``) and anything else is refused with a clear error.
"""

from expunge.tasks.base import TASKS, RequestView, Task, UnsupportedTask, get_task, register_task, request_view

__all__ = ["TASKS", "RequestView", "Task", "UnsupportedTask", "get_task", "register_task", "request_view"]
