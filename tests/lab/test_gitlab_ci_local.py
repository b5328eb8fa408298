"""docs/fleet.md's GitLab pipeline, run for real: gitlab-ci-local against the lab.

The `.gitlab-ci.yml` users copy is taken from docs/fleet.md itself (the doc
and this test cannot drift) and run by gitlab-ci-local (`make tools`
installs the pinned version in tools/node_modules) with its shell executor,
one job per pair of the doc's matrix, over a fleet inventory whose pairs are
all the lab's one migration under the doc's pair names. gitlab-ci-local runs
inside the lab's client namespace, as a runner placed where the servers can
be reached; every job is isolated in its own build directory
(`--shell-isolation`), as a GitLab runner gives each job its own checkout.

Proved: every pair's job ran and passed; each wrote its own JUnit file
(`reports/preflight-PAIR.xml`) holding only its pair's testcases; merged as
GitLab merges a pipeline's JUnit reports, no two testcases collide and every
pair is there whole; each job's artifacts keep its whole baseline (the JSON
file and its `.imap/` UID maps) for the cutover and acceptance jobs.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import IN_CI, Lab
from tests.suite import REPO, Case, parse_junit

GITLAB_CI_LOCAL = REPO / "tools" / "node_modules" / ".bin" / "gitlab-ci-local"
DOC = REPO / "docs" / "fleet.md"
SECTION = "## CI: one job per pair"
ACKNOWLEDGEMENT = "lab: TTLs lowered by `lab lower-ttl`; the lab has no resolvers that could cache"


def require_gitlab_ci_local() -> str:
    """gitlab-ci-local's version, or skip (fail with CI=true) saying how to install it."""
    why = None
    try:
        completed = subprocess.run(
            [str(GITLAB_CI_LOCAL), "--version"], capture_output=True, text=True, timeout=60
        )
    except OSError as exc:
        why = f"{GITLAB_CI_LOCAL.relative_to(REPO)}: {exc.strerror} (run `make tools`: needs npm)"
    else:
        if completed.returncode != 0:
            last = (completed.stderr.strip().splitlines() or ["no output"])[-1]
            why = f"gitlab-ci-local --version failed ({completed.returncode}): {last}"
    if why is None:
        return completed.stdout.strip()
    if IN_CI:
        pytest.fail(f"CI=true: the gitlab-ci-local test must run, but {why}", pytrace=False)
    pytest.skip(why)


def doc_pipeline() -> str:
    """The first ```yaml block of docs/fleet.md's CI section, verbatim."""
    text = DOC.read_text(encoding="utf-8")
    assert SECTION in text, f"{DOC.name} has no section {SECTION!r}"
    section = text.split(SECTION, 1)[1].split("\n## ", 1)[0]
    found = re.search(r"```yaml\n(.*?)```", section, re.DOTALL)
    assert found, f"{DOC.name}: no ```yaml block under {SECTION!r}"
    return found.group(1)


def matrix_pairs(pipeline: dict[str, Any]) -> tuple[str, list[str]]:
    """The job with a `parallel: matrix:` of PAIR values, and those values."""
    for job, body in pipeline.items():
        if isinstance(body, dict) and "parallel" in body:
            (axes,) = body["parallel"]["matrix"]
            return job, list(axes["PAIR"])
    raise AssertionError("the doc's pipeline has no job with parallel: matrix: PAIR")


def fleet_of(pairs: list[str]) -> Any:
    """Turn the lab's one-migration inventory into a fleet: every pair is the lab's migration."""

    def change(data: dict[str, Any]) -> None:
        old, new = data.pop("old"), data.pop("new")
        data["name"] = "lab-gitlab"
        data["dns"]["lowering_acknowledged"] = ACKNOWLEDGEMENT
        data["pairs"] = [{"name": name, "old": old, "new": new} for name in pairs]

    return change


def merged(junit_files: list[Path], into: Path) -> list[Case]:
    """One <testsuites> holding every file's suites, as GitLab merges a pipeline's reports."""
    root = ET.Element("testsuites")
    for path in junit_files:
        tree = ET.parse(path).getroot()
        root.extend(tree.iter("testsuite") if tree.tag == "testsuites" else [tree])
    ET.ElementTree(root).write(into, encoding="utf-8", xml_declaration=True)
    return parse_junit(into)


def files_under(directory: Path, pattern: str) -> set[str]:
    """The files matching `pattern` under `directory`, as paths relative to it."""
    return {str(path.relative_to(directory)) for path in directory.glob(pattern) if path.is_file()}


def test_the_docs_gitlab_matrix_runs_one_job_per_pair_and_merges(
    preflight_lab: Lab, tmp_path: Path
) -> None:
    version = require_gitlab_ci_local()
    text = doc_pipeline()
    job, pairs = matrix_pairs(yaml.safe_load(text))
    assert len(pairs) >= 2, pairs

    project = tmp_path / "project"  # the user's repository: the pipeline and the inventory
    project.mkdir()
    (project / ".gitlab-ci.yml").write_text(text, encoding="utf-8")
    built = preflight_lab.inventory_variant(
        tmp_path / "inventory", fleet_of(pairs), source="inventory-ipv4.yaml"
    )
    (project / "fleet.yaml").write_text(built.read_text(encoding="utf-8"), encoding="utf-8")

    # The runner's PATH has this checkout's `cutover`; its home is empty (no user variables).
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}"}
    command = [
        "ip", "netns", "exec", "cutover-client",
        str(GITLAB_CI_LOCAL), "--home", str(tmp_path / "home"), "--shell-isolation", "--no-color",
    ]  # fmt: skip
    completed = subprocess.run(
        command, capture_output=True, text=True, timeout=600, env=env, cwd=project
    )
    output = completed.stdout + completed.stderr
    shown = f"gitlab-ci-local {version}: {' '.join(command[4:])}\n{output[-6000:]}"
    assert completed.returncode == 0, shown
    for pair in pairs:
        assert re.search(rf"PASS\s+{re.escape(job)}: \[{re.escape(pair)}\]", output), shown

    state = project / ".gitlab-ci-local"
    junit_of: dict[str, Path] = {}
    for path in sorted(state.glob("builds/*/reports/preflight-*.xml")):
        pair = path.stem.removeprefix("preflight-")
        assert pair not in junit_of, f"two jobs wrote {path.name}: {junit_of.get(pair)}, {path}"
        junit_of[pair] = path
    assert sorted(junit_of) == sorted(pairs), shown

    per_pair: dict[str, set[str]] = {}
    for pair, path in junit_of.items():
        cases = parse_junit(path)
        assert cases, f"{path}: no testcase"
        assert not [c for c in cases if c.outcome in ("failed", "error")], "\n".join(
            f"{c.outcome} {c.name}: {c.message[:300]}" for c in cases
        )
        for case in cases:
            assert case.properties.get("pair") == pair, (path, case.name, case.properties)
            assert f"[{pair}-" in case.name or case.name.endswith(f"[{pair}]"), case.name
        per_pair[pair] = {f"{c.classname}::{c.name}" for c in cases}
        # The job's artifacts keep its whole baseline, for the cutover and acceptance jobs.
        build = path.parents[1]
        artifacts = state / "artifacts" / build.name
        baseline = f"reports/baseline-{pair}.json"
        uid_maps = files_under(build, f"reports/baseline-{pair}.imap/**/*")
        assert (build / baseline).is_file() and uid_maps, f"{build}: {baseline}, {uid_maps}"
        written = {baseline, *uid_maps}
        kept = files_under(artifacts, "reports/**/*")
        assert written <= kept, f"not kept as artifacts: {sorted(written - kept)}"

    # Every pair ran the same checks of the same lab: same number of testcases each.
    assert len({len(names) for names in per_pair.values()}) == 1, {
        pair: len(names) for pair, names in per_pair.items()
    }
    report = merged(list(junit_of.values()), tmp_path / "merged.xml")
    names = [f"{c.classname}::{c.name}" for c in report]
    assert len(names) == len(set(names)), "testcases collide in the merged report"
    assert set(names) == set().union(*per_pair.values())
    assert {c.properties["pair"] for c in report} == set(pairs)
