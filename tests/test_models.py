"""The instance model reads what eyrie writes, writes what eyrie reads, and never serialises a secret."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from supervisor.errors import InvalidName
from supervisor.models import (
    CreateRequest,
    HealthStatus,
    HierarchyRole,
    Instance,
    InstanceStatus,
    LastExit,
    MigrationResult,
    TemplateContext,
    check_name,
    display_name_for,
    new_instance_id,
    parse_duration,
)

# An instance.json as eyrie's Go `instance` package writes it: every seed field, Go's RFC 3339 times.
SEED_INSTANCE: dict[str, Any] = {
    "id": "0b6f4a52-7f0e-4e4b-9d3c-2f1d8a9e6c11",
    "name": "strategist-sarah",
    "display_name": "Strategist Sarah",
    "framework": "zeroclaw",
    "persona_id": "strategist",
    "hierarchy_role": "commander",
    "project_id": "apollo",
    "parent_id": "9d1c3b7e-0000-4000-8000-000000000001",
    "port": 43001,
    "config_path": "/home/u/.eyrie/instances/0b6f4a52-7f0e-4e4b-9d3c-2f1d8a9e6c11/config.toml",
    "workspace_path": "/home/u/.eyrie/instances/0b6f4a52-7f0e-4e4b-9d3c-2f1d8a9e6c11/workspace",
    "status": "running",
    "status_updated_at": "2026-03-01T12:34:56.123456789-05:00",
    "pid": 4242,
    "last_seen": "2026-03-01T17:35:00Z",
    "health_status": "healthy",
    "restart_count": 2,
    "created_at": "2026-02-28T09:00:00Z",
    "created_by": "user",
}

GO_ZERO = "0001-01-01T00:00:00Z"


class TestInstance:
    def test_every_seed_field_round_trips_with_the_seed_keys(self) -> None:
        """Each seed key read from a Go-written file is written back under the same key and value."""
        out = Instance.model_validate(SEED_INSTANCE).to_json_dict()
        for key, value in SEED_INSTANCE.items():
            assert key in out, key
            if key.endswith("_at") or key == "last_seen":
                assert datetime.fromisoformat(out[key]) == datetime.fromisoformat(value), key
            else:
                assert out[key] == value, key

    def test_written_times_are_rfc3339_in_utc_notation(self) -> None:
        """Times are written as RFC 3339 with ``Z`` for UTC, which Go's time.Time unmarshals."""
        inst = Instance(
            id="a", name="a", framework="embedded", created_at=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
        )
        assert inst.to_json_dict()["created_at"] == "2026-01-02T03:04:05Z"

    def test_time_without_offset_reads_as_utc(self) -> None:
        """A hand-edited time without an offset is taken as UTC, so it compares with every other time."""
        inst = Instance.model_validate(
            {"created_at": "2026-01-02T03:04:05", "last_seen": "2026-01-02T03:04:06Z"}
        )
        assert inst.created_at == datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
        assert inst.last_seen is not None and inst.created_at < inst.last_seen

    def test_go_zero_times_read_as_unset_and_are_not_written(self) -> None:
        """Go's zero time.Time means "never"; it reads as None and is left out when written."""
        data = {**SEED_INSTANCE, "status_updated_at": GO_ZERO, "last_seen": GO_ZERO, "created_at": GO_ZERO}
        inst = Instance.model_validate(data)
        assert inst.status_updated_at is None and inst.last_seen is None and inst.created_at is None
        out = inst.to_json_dict()
        assert "status_updated_at" not in out and "last_seen" not in out and "created_at" not in out

    def test_minimal_go_file_reads_with_defaults(self) -> None:
        """A file with only the keys Go always writes (omitempty ones absent) reads with sensible defaults."""
        data = {
            "id": "x1",
            "name": "talon-1",
            "display_name": "Talon 1",
            "framework": "picoclaw",
            "port": 43002,
            "config_path": "/c",
            "workspace_path": "/w",
            "status": "created",
            "created_at": GO_ZERO,
            "created_by": "",
        }
        inst = Instance.model_validate(data)
        assert inst.hierarchy_role is HierarchyRole.STANDALONE
        assert inst.pid is None and inst.health_status is None and inst.restart_count == 0
        assert inst.schema_version == 0 and inst.desired is None and inst.last_exit is None

    def test_go_empty_values_read_as_unset(self) -> None:
        """Go's ``pid: 0`` and ``health_status: ""`` mean "none", not a pid 0 or a bad health value."""
        inst = Instance.model_validate({**SEED_INSTANCE, "pid": 0, "health_status": ""})
        assert inst.pid is None and inst.health_status is None
        assert "pid" not in inst.to_json_dict()

    def test_unknown_keys_survive_a_round_trip(self) -> None:
        """Keys this version does not know (a newer eyrie's) are written back unchanged, null included."""
        extra = {"future_flag": True, "labels": {"team": "a", "note": None}, "cleared": None}
        inst = Instance.model_validate({**SEED_INSTANCE, **extra})
        again = Instance.model_validate(json.loads(json.dumps(inst.to_json_dict())))
        out = again.to_json_dict()
        for key, value in extra.items():
            assert out[key] == value

    def test_auth_token_is_never_serialised(self) -> None:
        """The token is readable in memory but absent from to_json_dict, model_dump_json and repr."""
        inst = Instance.model_validate({**SEED_INSTANCE, "auth_token": "s3cr3t-token"})
        assert inst.auth_token == "s3cr3t-token"
        assert "auth_token" not in inst.to_json_dict()
        assert "s3cr3t-token" not in json.dumps(inst.to_json_dict())
        assert "s3cr3t-token" not in inst.model_dump_json()
        assert "s3cr3t-token" not in repr(inst)

    def test_runtime_fields_round_trip(self) -> None:
        """The supervisor's own fields (desired, last_exit, pgid, …) survive a write and a read."""
        inst = Instance(
            id="r1",
            name="r1",
            framework="embedded",
            desired="running",
            status_detail="backoff 8s",
            next_start_at=datetime(2026, 1, 1, tzinfo=UTC),
            pgid=99,
            proc_start_time=1234.5,
            boot_id="b-1",
            cmdline=["python", "-m", "x"],
            last_exit=LastExit(code=None, signal=9, time=datetime(2026, 1, 1, tzinfo=UTC)),
            last_error="exit code 1",
            config_hash="abc",
            total_restarts=7,
            health_status=HealthStatus.UNHEALTHY,
        )
        again = Instance.model_validate(json.loads(json.dumps(inst.to_json_dict())))
        assert again == inst
        assert again.last_exit is not None and again.last_exit.describe() == "killed by signal 9"

    def test_invalid_field_values_are_rejected(self) -> None:
        """A status outside the seed's five, or a port that is not a number, is a validation error."""
        with pytest.raises(ValidationError):
            Instance.model_validate({**SEED_INSTANCE, "status": "crashed"})
        with pytest.raises(ValidationError):
            Instance.model_validate({**SEED_INSTANCE, "port": "eighty"})

    def test_assignment_is_validated(self) -> None:
        """Assigning a bad status to a live model fails at once, not when the file is written."""
        inst = Instance.model_validate(SEED_INSTANCE)
        with pytest.raises(ValidationError):
            inst.status = "bogus"  # type: ignore[assignment]


class TestInstanceStatus:
    def test_exactly_the_seed_statuses(self) -> None:
        """There are exactly the seed's five statuses, with its spellings."""
        assert [s.value for s in InstanceStatus] == ["created", "starting", "running", "stopped", "error"]
        assert all(s.valid() for s in InstanceStatus)


class TestHierarchyRole:
    def test_seed_roles_and_standalone_is_empty(self) -> None:
        """The roles are the seed's, and a standalone instance has the empty role."""
        assert [r.value for r in HierarchyRole] == ["commander", "captain", "talon", ""]
        assert HierarchyRole("") is HierarchyRole.STANDALONE


class TestCheckName:
    @pytest.mark.parametrize(
        ("name", "why"),
        [
            ("", "empty"),
            ("a/b", "path separator"),
            ("..", "path separator or '..'"),
            ("a..b", "'..'"),
            ("my agent", "whitespace"),
            ("agent\n", "whitespace or a newline"),
            ("\tagent", "whitespace"),
            ("Sarah", "uppercase"),
            ("x" * 64, "the limit is 63"),
            ("-lead", "not a slug"),
            ("under_score", "not a slug"),
            ("dot.name", "not a slug"),
        ],
    )
    def test_bad_names_are_rejected_saying_why(self, name: str, why: str) -> None:
        """Each bad name raises InvalidName with a message naming the rule it breaks."""
        with pytest.raises(InvalidName, match=why.replace(".", r"\.").replace("(", r"\(")):
            check_name(name)

    def test_non_string_is_rejected(self) -> None:
        """A name that is not a string at all (e.g. from YAML ``name: 12``) is rejected, saying so."""
        with pytest.raises(InvalidName, match="must be a string"):
            check_name(12)  # type: ignore[arg-type]

    @pytest.mark.parametrize("name", ["a", "strategist-sarah", "talon-01", "0day", "x" * 63])
    def test_good_names_pass_unchanged(self, name: str) -> None:
        """Slugs of 1 to 63 lowercase letters, digits and dashes are returned as they are."""
        assert check_name(name) == name

    def test_invalid_name_is_a_value_error(self) -> None:
        """Callers that catch ValueError (pydantic validators) catch InvalidName too."""
        assert issubclass(InvalidName, ValueError)


class TestDisplayName:
    @pytest.mark.parametrize(
        ("slug", "display"),
        [
            ("strategist-sarah", "Strategist Sarah"),
            ("talon", "Talon"),
            ("talon-01", "Talon 01"),
            ("a--b", "A B"),
        ],
    )
    def test_derived_from_the_slug(self, slug: str, display: str) -> None:
        """Dashes become spaces and each word is capitalised, as eyrie's toDisplayName does."""
        assert display_name_for(slug) == display


class TestParseDuration:
    @pytest.mark.parametrize(
        ("text", "seconds"),
        [
            ("250ms", 0.25),
            ("10s", 10.0),
            ("5m", 300.0),
            ("1h", 3600.0),
            ("30d", 2592000.0),
            ("1.5s", 1.5),
            (" 2 s ", 2.0),
            ("7", 7.0),
            (3, 3.0),
            (0.5, 0.5),
            (0, 0.0),
        ],
    )
    def test_accepted_forms(self, text: object, seconds: float) -> None:
        """Units ms, s, m, h, d and plain numbers all turn into seconds."""
        assert parse_duration(text) == seconds

    @pytest.mark.parametrize(
        "bad", ["", "ten seconds", "5w", "-1s", -1, True, None, float("nan"), float("inf")]
    )
    def test_rejected_forms(self, bad: object) -> None:
        """Unknown units, negatives, booleans, None and non-finite numbers are errors naming the value."""
        with pytest.raises(ValueError, match="duration"):
            parse_duration(bad)

    def test_duration_fields_in_models(self) -> None:
        """A model field typed Duration parses text and reports a bad one as a validation error."""
        from supervisor.models import Duration

        class Policy(BaseModel):
            delay: Duration

        assert Policy.model_validate({"delay": "250ms"}).delay == 0.25
        with pytest.raises(ValidationError, match="not a duration"):
            Policy.model_validate({"delay": "soon"})


class TestOtherSeedTypes:
    def test_create_request_uses_seed_keys_and_hides_project_context(self) -> None:
        """CreateRequest reads the seed's JSON keys; the project context fields are never serialised."""
        req = CreateRequest.model_validate(
            {"name": "a", "framework": "zeroclaw", "hierarchy_role": "talon", "auto_start": False}
        )
        req2 = req.model_copy(update={"project_goal": "ship it"})
        assert req2.hierarchy_role is HierarchyRole.TALON and req2.auto_start is False
        assert "project_goal" not in req2.model_dump()

    def test_create_request_rejects_unknown_keys(self) -> None:
        """A typo in an API body is an error, not a silently ignored field."""
        with pytest.raises(ValidationError):
            CreateRequest.model_validate({"name": "a", "framwork": "zeroclaw"})

    def test_migration_result_keys(self) -> None:
        """MigrationResult serialises with the seed's keys."""
        result = MigrationResult(instance_id="i", instance_name="n", framework="zeroclaw", applied=["x"])
        keys = {"instance_id", "instance_name", "framework", "applied", "skipped", "error"}
        assert set(result.model_dump()) == keys

    def test_template_context_is_frozen(self) -> None:
        """Templates cannot change the context they are rendered with."""
        ctx = TemplateContext(name="a", display_name="A")
        with pytest.raises(ValidationError):
            ctx.name = "b"  # type: ignore[misc]

    def test_new_ids_are_lowercase_uuid4(self) -> None:
        """Instance ids are lowercase UUID4 strings, distinct each time."""
        ids = {new_instance_id() for _ in range(50)}
        assert len(ids) == 50
        for i in ids:
            assert i == i.lower() and len(i) == 36 and i[14] == "4"
