"""`./manage.py cluster`: the nodes, their spaces and free memory; `cluster place` sets where a
space may run (Swarm constraints, docs/cluster.md)."""

from django.core.management.base import BaseCommand, CommandError

from runner.backend import RuntimeBackendError, backend
from runner.models import Runtime
from spacedock import buildqueues
from spacedock.labels import LABEL_SPACE
from spacedock.spaces.models import Space

MB = 2**20


class Command(BaseCommand):
    help = "Shows the cluster's nodes, their spaces and free memory; `place` sets a space's constraints."

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action")
        sub.add_parser("status", help="nodes, their spaces, free memory (the default)")
        place = sub.add_parser("place", help="set a space's placement constraints")
        place.add_argument("space", help="<owner>/<name>")
        place.add_argument(
            "constraints", nargs="?", default="", help="e.g. node.labels.gpu==true ('' clears)"
        )

    def handle(self, *args, action: str | None = None, **options):
        if action == "place":
            return self.place(options["space"], options["constraints"])
        self.stdout.write(buildqueues.report())
        runtime = backend()
        if runtime.name != "swarm":
            running = Space.objects.exclude(container_id="").order_by("subdomain")
            self.stdout.write(f"local backend: one host, {running.count()} spaces running")
            for space in running:
                self.stdout.write(f"  {space.full_name:40} {space.stage}")
            return
        try:
            nodes = runtime.node_report()
            owned = {i.id: i for i in runtime.instances()}
        except RuntimeBackendError as exc:
            raise CommandError(str(exc)) from None
        names = {
            str(s.pk): s
            for s in Space.objects.filter(pk__in=[int(i.labels[LABEL_SPACE]) for i in owned.values()])
        }
        for node in nodes:
            free = (node["memory"] - node["reserved"]) // MB
            labels = ",".join(f"{k}={v}" for k, v in sorted(node["labels"].items())) or "-"
            self.stdout.write(
                f"{node['hostname']} {node['address']} {node['state']}/{node['availability']} "
                f"labels {labels}: {free} MB free of {node['memory'] // MB} MB"
            )
            for service_id in node["services"]:
                instance = owned.get(service_id)
                if instance is None:
                    continue
                space = names.get(instance.labels.get(LABEL_SPACE, ""))
                name = space.full_name if space else f"space {instance.labels.get(LABEL_SPACE)}"
                self.stdout.write(f"  {name:40} {space.stage if space else ''}")

    def place(self, full_name: str, constraints: str) -> None:
        owner, _, name = full_name.partition("/")
        space = Space.objects.filter(owner__username=owner, name=name).first()
        if space is None:
            raise CommandError(f"no space {full_name}")
        Runtime.objects.update_or_create(space=space, defaults={"placement": constraints})
        self.stdout.write(f"{full_name}: placement {constraints or '(any node)'}; restart it to apply")
