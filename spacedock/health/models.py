from django.db import models


class Counter(models.Model):
    """A monotonic count that several processes add to, read by /metrics (e.g. "wakes").

    In the database, not in a process's memory: the runner, the web and the workers each
    bump it, and any gunicorn worker can report the total.
    """

    name = models.CharField(max_length=100, unique=True)
    value = models.BigIntegerField(default=0)

    def __str__(self) -> str:
        return f"{self.name}={self.value}"

    @classmethod
    def bump(cls, name: str, by: int = 1) -> None:
        updated = cls.objects.filter(name=name).update(value=models.F("value") + by)
        if not updated:
            _, created = cls.objects.get_or_create(name=name, defaults={"value": by})
            if not created:
                cls.objects.filter(name=name).update(value=models.F("value") + by)

    @classmethod
    def read(cls, name: str) -> int:
        return cls.objects.filter(name=name).values_list("value", flat=True).first() or 0
