"""Evidence files and folders get the socket's trust rule: owner, modes along the path, symbolic
links only from trusted folders, regular files only (``check_file_trust`` and every file
provider); untrusted evidence ends UNOBSERVABLE naming the path and the fix."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import stat
from collections.abc import Callable
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from gate_repo import make_gate_repo
from gate_repo import only_run
from guards import promptly

from pytest_canarygate.agtmux.providers import make_provider
from pytest_canarygate.agtmux.sim import SimFleet
from pytest_canarygate.agtmux.sim import start_fleet
from pytest_canarygate.errors import EvidenceMissing
from pytest_canarygate.errors import TransportError
from pytest_canarygate.errors import UntrustedEndpointError
from pytest_canarygate.observation import SIMULATOR_MARKER
from pytest_canarygate.trust import check_file_trust

OPS = Path(__file__).parent / "data" / "ops"
URI = "file:///evidence"
UID = os.geteuid()
ROOT = UID == 0
#: A uid that is neither ours nor root's (nobody).
OTHER_UID = 65534 if UID != 65534 else 65533


@pytest.fixture
def base(tmp_path: Path) -> Iterator[Path]:
    """A private folder (0700) of ours to build evidence trees in; modes are restored so the
    tree can be removed."""
    tmp_path.chmod(0o700)
    yield tmp_path
    for path in [tmp_path, *tmp_path.rglob("*")]:
        if path.is_dir() and not path.is_symlink():
            path.chmod(0o700)


def private_file(path: Path, text: str = "{}\n", mode: int = 0o600) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(mode)
    return path


def refused(path: Path, **kwargs: Any) -> str:
    with pytest.raises(UntrustedEndpointError) as info:
        check_file_trust(path, endpoint=URI, method="m", **kwargs)
    message = str(info.value)
    assert message.startswith(f"{URI} m: refusing to read: "), message
    return message


def owned_by_someone_else(path: Path) -> dict[str, int]:
    """Make ``path`` someone else's: chown as root, else claim we are another uid. Returns the
    keyword arguments for the check."""
    if ROOT:
        os.chown(path, OTHER_UID, -1, follow_symlinks=False)
        return {}
    return {"expected_uid": UID + 1}


# --- check_file_trust ----------------------------------------------------------------------


def test_own_private_file_in_private_folders_is_trusted(base: Path) -> None:
    path = private_file(base / "a" / "alerts.jsonl", mode=0o644)
    (base / "a").chmod(0o755)
    checked = check_file_trust(path, endpoint=URI)
    assert checked.real == path
    assert stat.S_ISREG(checked.stat.st_mode)


@pytest.mark.parametrize(
    ("mode", "who"), [(0o666, "group and others"), (0o664, "group"), (0o646, "others")]
)
def test_writable_file_is_refused_with_the_fix(base: Path, mode: int, who: str) -> None:
    path = private_file(base / "alerts.jsonl", mode=mode)
    message = refused(path)
    assert f"file {path} is writable by {who} (mode {mode:04o})" in message
    assert message.endswith(f"chmod go-w {path}")


@pytest.mark.parametrize("mode", [0o777, 0o770, 0o707])
def test_file_in_a_writable_folder_is_refused(base: Path, mode: int) -> None:
    path = private_file(base / "shared" / "alerts.jsonl", mode=0o644)
    (base / "shared").chmod(mode)
    message = refused(path)
    assert f"folder {base / 'shared'} is writable by" in message
    assert f"(mode {mode:04o})" in message
    assert message.endswith(f"chmod go-w {base / 'shared'}")


def test_writable_folder_far_up_the_path_is_refused(base: Path) -> None:
    path = private_file(base / "up" / "a" / "b" / "alerts.jsonl")
    (base / "up").chmod(0o777)
    assert f"folder {base / 'up'} is writable by group and others" in refused(path)


def test_sticky_shared_folder_may_hold_a_private_folder(base: Path) -> None:
    # The /tmp case: 1777 on the way is fine, as long as what it holds is ours and private.
    shared = base / "tmp"
    path = private_file(shared / "mine" / "agtmux.log")
    (shared / "mine").chmod(0o700)
    shared.chmod(0o1777)
    assert check_file_trust(path, endpoint=URI).real == path


def test_sticky_shared_folder_may_hold_a_private_evidence_directory(base: Path) -> None:
    shared = base / "tmp"
    (shared / "snapshots").mkdir(parents=True, mode=0o700)
    shared.chmod(0o1777)
    checked = check_file_trust(shared / "snapshots", endpoint=URI, directory=True)
    assert checked.real == shared / "snapshots"


def test_sticky_shared_folder_may_not_hold_the_evidence_itself(base: Path) -> None:
    shared = base / "tmp"
    path = private_file(shared / "agtmux.log")
    shared.chmod(0o1777)
    message = refused(path)
    assert f"file {path} sits directly in {shared}, which group and others can write" in message
    assert "(mode 1777)" in message
    assert "move it into a folder of its own" in message


def test_file_owned_by_another_user_is_refused(base: Path) -> None:
    path = private_file(base / "cursor.json", mode=0o644)
    kwargs = owned_by_someone_else(path)
    message = refused(path, **kwargs)
    expected = kwargs.get("expected_uid", UID)
    assert f"file {path} is owned by uid {os.stat(path).st_uid}" in message
    assert message.endswith(f"chown {expected} {path}")


@pytest.mark.skipif(not ROOT, reason="only root can give a folder away")
def test_folder_owned_by_another_user_is_refused(base: Path) -> None:
    path = private_file(base / "theirs" / "cursor.json")
    os.chown(base / "theirs", OTHER_UID, -1)
    assert f"folder {base / 'theirs'} is owned by uid {OTHER_UID}" in refused(path)


def test_root_owned_evidence_is_trusted_whoever_reads_it(base: Path) -> None:
    path = private_file(base / "cursor.json", mode=0o644)
    if ROOT:  # root's file, read by another user: root is always trusted
        assert check_file_trust(path, endpoint=URI, expected_uid=OTHER_UID).real == path
    else:
        assert os.stat("/").st_uid == 0
        assert check_file_trust("/", endpoint=URI, directory=True).real == Path("/")


def test_symlink_inside_trusted_folders_is_followed(base: Path) -> None:
    target = private_file(base / "real" / "alerts.jsonl")
    (base / "links").mkdir(mode=0o700)
    link = base / "links" / "alerts.jsonl"
    link.symlink_to("../real/alerts.jsonl")
    checked = check_file_trust(link, endpoint=URI)
    assert checked.path == link
    assert checked.real == target


def test_symlink_into_a_world_writable_folder_is_refused(base: Path) -> None:
    private_file(base / "drop" / "alerts.jsonl", mode=0o644)
    (base / "drop").chmod(0o777)
    link = base / "alerts.jsonl"
    link.symlink_to(base / "drop" / "alerts.jsonl")
    message = refused(link)
    assert f"folder {base / 'drop'} is writable by group and others (mode 0777)" in message
    assert f"(reached through the symbolic link {link})" in message


def test_symlink_sitting_in_a_sticky_shared_folder_is_refused(base: Path) -> None:
    target = private_file(base / "real" / "alerts.jsonl")
    shared = base / "tmp"
    shared.mkdir()
    (shared / "alerts.jsonl").symlink_to(target)
    shared.chmod(0o1777)
    message = refused(shared / "alerts.jsonl")
    assert f"symbolic link {shared / 'alerts.jsonl'} sits directly in {shared}" in message


def test_symlink_loop_is_refused(base: Path) -> None:
    (base / "a").symlink_to(base / "b")
    (base / "b").symlink_to(base / "a")
    assert "more than 40 symbolic links" in refused(base / "a")


def test_dangling_symlink_or_missing_file_is_not_served(base: Path) -> None:
    (base / "gone").symlink_to(base / "nowhere.json")
    with pytest.raises(EvidenceMissing, match=f"no such file: {base / 'gone'}"):
        check_file_trust(base / "gone", endpoint=URI)
    with pytest.raises(EvidenceMissing, match=f"no such directory: {base / 'nodir'}"):
        check_file_trust(base / "nodir", endpoint=URI, directory=True)


def test_untrusted_folder_is_reported_before_a_missing_file(base: Path) -> None:
    (base / "drop").mkdir()
    (base / "drop").chmod(0o777)
    assert "writable by group and others" in refused(base / "drop" / "missing.json")


def make_fifo(path: Path) -> Path:
    os.mkfifo(path, 0o600)
    return path


def make_socket(path: Path) -> Path:
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(path))
    return path


@pytest.mark.parametrize(
    ("make", "kind"),
    [(make_fifo, "named pipe"), (make_socket, "socket")],
    ids=["fifo", "socket"],
)
def test_not_a_regular_file_is_refused_before_any_open(
    base: Path, make: Callable[[Path], Path], kind: str
) -> None:
    path = make(base / "e.json")
    message = promptly(lambda: refused(path))
    assert f"{path} is a {kind} (mode " in message
    assert "not a regular file" in message


def test_device_behind_a_symlink_is_refused(base: Path) -> None:
    link = base / "agtmux-v4"
    link.symlink_to("/dev/zero")
    message = promptly(lambda: refused(link))
    assert "/dev/zero is a device" in message
    assert f"(reached through the symbolic link {link})" in message


def test_folder_where_a_file_is_expected_and_the_reverse(base: Path) -> None:
    (base / "d").mkdir(mode=0o700)
    with pytest.raises(TransportError, match="is a directory, expected a file"):
        check_file_trust(base / "d", endpoint=URI)
    path = private_file(base / "f.json")
    with pytest.raises(TransportError, match="is a regular file, expected a directory"):
        check_file_trust(path, endpoint=URI, directory=True)


def test_a_folder_with_a_sticky_world_writable_mode_cannot_hold_snapshots(base: Path) -> None:
    folder = base / "snapshots"
    folder.mkdir()
    folder.chmod(0o1777)
    message = refused(folder, directory=True)
    assert f"directory {folder} is writable by group and others (mode 1777)" in message


# --- every file provider ---------------------------------------------------------------------


def ops_tree(base: Path) -> Path:
    """A private copy of the recorded operations evidence, plus an archive."""
    root = base / "ops"
    shutil.copytree(OPS, root)
    binary = b"\x7fELF v4"
    private_file(root / "archive" / "agtmux-v4", "")
    (root / "archive" / "agtmux-v4").write_bytes(binary)
    manifest = {
        "binary": "agtmux-v4",
        "sha256": hashlib.sha256(binary).hexdigest(),
        "archived_at_ms": 1_795_564_800_000,
        "retain_until_ms": 1_795_564_800_000 + 30 * 86_400_000,
    }
    private_file(root / "archive" / "manifest.json", json.dumps(manifest))
    for path in [root, *root.rglob("*")]:
        path.chmod(0o700 if path.is_dir() else 0o600)
    return root


#: kind -> the file read inside a folder kind's folder
INSIDE = {
    "snapshots": "snap-2.json",
    "supervisor": "status.json",
    "supervisor_events": "events.jsonl",
}


def file_read(root: Path, kind: str) -> Path:
    return root / READERS[kind][0] / INSIDE.get(kind, "")


#: kind -> (the path the URI names, relative to the ops tree; the accessor)
READERS: dict[str, tuple[str, Callable[[Any], Any]]] = {
    "snapshots": ("snapshots", lambda p: p.snapshots()),
    "supervisor": ("supervisor", lambda p: p.supervisor_status()),
    "supervisor_events": ("supervisor", lambda p: p.supervisor_events()),
    "alerts": ("alerts.jsonl", lambda p: p.alert_entries()),
    "cursor": ("cursor.json", lambda p: p.cursor_stats()),
    "binding": ("binding.json", lambda p: p.binding_stats()),
    "selector": ("runtime.toml", lambda p: p.runtime_selector()),
    "daemon_log": ("daemon.log", lambda p: p.log_events()),
    "build": ("junit.xml", lambda p: p.build_result()),
    "archive": ("archive/manifest.json", lambda p: p.archive_manifest()),
}


def read(kind: str, root: Path) -> Any:
    relative, ask = READERS[kind]
    provider = make_provider(kind.removesuffix("_events"), (root / relative).as_uri())
    return promptly(lambda: ask(provider))


@pytest.mark.parametrize("kind", READERS)
def test_every_file_provider_reads_trusted_evidence(base: Path, kind: str) -> None:
    evidence = read(kind, ops_tree(base))
    assert evidence.records


@pytest.mark.parametrize("kind", READERS)
def test_every_file_provider_refuses_a_world_writable_file(base: Path, kind: str) -> None:
    root = ops_tree(base)
    target = file_read(root, kind)
    target.chmod(0o666)
    with pytest.raises(UntrustedEndpointError) as info:
        read(kind, root)
    assert f"{target} is writable by group and others (mode 0666)" in str(info.value)
    assert f"chmod go-w {target}" in str(info.value)


@pytest.mark.parametrize("kind", READERS)
def test_every_file_provider_refuses_a_world_writable_folder(base: Path, kind: str) -> None:
    root = ops_tree(base)
    root.chmod(0o777)
    with pytest.raises(UntrustedEndpointError, match=f"folder {root} is writable by group"):
        read(kind, root)


@pytest.mark.parametrize("kind", READERS)
def test_every_file_provider_refuses_a_fifo_without_blocking(base: Path, kind: str) -> None:
    root = ops_tree(base)
    target = file_read(root, kind)
    target.unlink()
    os.mkfifo(target, 0o600)
    with pytest.raises(UntrustedEndpointError, match=f"{target} is a named pipe"):
        read(kind, root)


@pytest.mark.parametrize("kind", READERS)
def test_every_file_provider_refuses_evidence_of_another_user(base: Path, kind: str) -> None:
    root = ops_tree(base)
    if not ROOT:
        pytest.skip("only root can give a file away")
    target = file_read(root, kind)
    os.chown(target, OTHER_UID, -1)
    with pytest.raises(UntrustedEndpointError, match=f"{target} is owned by uid {OTHER_UID}"):
        read(kind, root)


def test_a_non_file_named_like_a_snapshot_is_refused_not_skipped(base: Path) -> None:
    root = ops_tree(base)
    (root / "snapshots" / "snap-0.json").mkdir(mode=0o700)
    with pytest.raises(TransportError, match=r"snap-0\.json is a directory, expected a file"):
        read("snapshots", root)


def test_archived_binary_linked_to_dev_zero_is_refused(base: Path) -> None:
    root = ops_tree(base)
    binary = root / "archive" / "agtmux-v4"
    binary.unlink()
    binary.symlink_to("/dev/zero")
    with pytest.raises(UntrustedEndpointError) as info:
        read("archive", root)
    message = str(info.value)
    assert "agtmux-v4: refusing to read: /dev/zero is a device" in message
    assert f"reached through the symbolic link {binary}" in message


def test_archived_binary_as_a_fifo_is_refused(base: Path) -> None:
    root = ops_tree(base)
    binary = root / "archive" / "agtmux-v4"
    binary.unlink()
    os.mkfifo(binary, 0o600)
    with pytest.raises(UntrustedEndpointError, match=f"{binary} is a named pipe"):
        read("archive", root)


def test_archived_binary_missing_or_dangling_is_a_finding(base: Path) -> None:
    root = ops_tree(base)
    binary = root / "archive" / "agtmux-v4"
    binary.unlink()
    binary.symlink_to(root / "archive" / "deleted")
    manifest = read("archive", root).one()
    assert (manifest.present, manifest.actual_sha256) == (False, None)


def test_archived_binary_writable_by_others_is_refused(base: Path) -> None:
    root = ops_tree(base)
    (root / "archive" / "agtmux-v4").chmod(0o646)
    with pytest.raises(UntrustedEndpointError, match="agtmux-v4 is writable by others"):
        read("archive", root)


# --- through the plugin: UNOBSERVABLE naming the path, run sealed ------------------------------


@pytest.fixture
def live_fleet() -> Iterator[SimFleet]:
    with start_fleet("healthy", phase="cutover") as fleet:
        for uri in fleet.endpoints.values():
            (Path(uri.removeprefix("unix://")).parent / SIMULATOR_MARKER).unlink()
        yield fleet


def fleet_config(fleet: SimFleet) -> str:
    return (
        '[migration]\nid = "trust-test"\n'
        f'[daemons.v4]\nendpoint = "{fleet.endpoints["v4"]}"\n'
        f'[daemons.v5]\nendpoint = "{fleet.endpoints["v5"]}"\n'
        "[timeouts]\nconnect_s = 1.0\nread_s = 2.0\n"
        "[evidence]\n" + "".join(f'{kind} = "{uri}"\n' for kind, uri in fleet.evidence.items())
    )


@pytest.mark.parametrize("fault", ["dev-zero", "fifo", "world-writable-folder"])
def test_untrusted_archive_makes_its_gates_unobservable_in_a_run(
    pytester: pytest.Pytester, live_fleet: SimFleet, fault: str
) -> None:
    manifest = Path(live_fleet.evidence["archive"].removeprefix("file://"))
    binary = next(p for p in manifest.parent.iterdir() if p.name.startswith("agtmux-"))
    binary.unlink()
    named = str(binary)
    if fault == "dev-zero":
        binary.symlink_to("/dev/zero")
        named = "/dev/zero is a device"
    elif fault == "fifo":
        os.mkfifo(binary, 0o600)
    else:
        binary.write_bytes(b"v4")
        manifest.parent.chmod(0o777)
        named = f"folder {manifest.parent} is writable by group and others"
    make_gate_repo(pytester, config=fleet_config(live_fleet))
    try:
        result = pytester.runpytest_subprocess(
            "--phase=cutover", "-k", "binary", "-p", "no:randomly", timeout=120
        )
    finally:
        manifest.parent.chmod(0o700)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    bundle, run = only_run(pytester.path)
    gates = [g for g in run["gates"] if "binary" in g["gate"]]
    assert len(gates) == 2, run["gates"]
    for gate in gates:
        assert gate["verdict"] == "UNOBSERVABLE", gate
        assert named in gate["message"], gate
        assert "refusing to read" in gate["message"]
    assert (bundle / "statement.dsse.json").exists()  # sealed, not left -running
