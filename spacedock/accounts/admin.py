from django.contrib import admin

from spacedock.accounts.models import AccessToken, Membership, Organization, Quota


@admin.register(Quota)
class QuotaAdmin(admin.ModelAdmin):
    list_display = (
        "user",
        "spaces",
        "concurrent_builds",
        "running_spaces",
        "running_memory_mb",
        "never_sleep",
        "gpus",
        "buckets",
        "hardware",
    )
    search_fields = ("user__username",)
    raw_id_fields = ("user",)


@admin.register(AccessToken)
class AccessTokenAdmin(admin.ModelAdmin):
    list_display = ("user", "name", "scope", "hint", "created", "last_used", "revoked")
    search_fields = ("user__username", "name")
    readonly_fields = ("digest", "hint", "created", "last_used")
    raw_id_fields = ("user",)


class MembershipInline(admin.TabularInline):
    model = Membership
    raw_id_fields = ("user",)
    extra = 0


@admin.register(Organization)
class OrganizationAdmin(admin.ModelAdmin):
    list_display = ("account", "full_name", "created")
    search_fields = ("account__username", "full_name")
    raw_id_fields = ("account",)
    inlines = [MembershipInline]
