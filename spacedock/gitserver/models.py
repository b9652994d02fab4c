from django.db import models


class LfsObject(models.Model):
    """A space references an LFS object: its uploads, pushes and downloads may use it.

    Storage is shared by content, so this row, not the oid, is what lets a space read an object:
    one tenant cannot download another's file by knowing its sha256.
    """

    space = models.ForeignKey("spaces.Space", on_delete=models.CASCADE, related_name="lfs_objects")
    oid = models.CharField(max_length=64)
    size = models.BigIntegerField()
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["space", "oid"], name="lfs_object_per_space")]

    @classmethod
    def record(cls, space, oid: str, size: int) -> None:
        cls.objects.get_or_create(space=space, oid=oid, defaults={"size": size})

    @classmethod
    def copy_references(cls, source, target) -> None:
        """A duplicate reads the same objects as its source."""
        cls.objects.bulk_create(
            [cls(space=target, oid=o.oid, size=o.size) for o in source.lfs_objects.all()],
            ignore_conflicts=True,
        )
