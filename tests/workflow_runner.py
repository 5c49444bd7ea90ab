"""Runs a GitHub Actions job of .github/workflows on this machine, step by step and in order, the
way a runner would: each `run:` through `bash -eo pipefail` with the workflow's, the job's and the
step's environment, $GITHUB_ENV / $GITHUB_PATH / $GITHUB_OUTPUT / $GITHUB_STEP_SUMMARY honoured
between steps, `if:` conditions decided, and the few actions the workflows use stood in for
(checkout: the workspace is already there; upload/download-artifact: a folder).

Only the expressions and conditions the workflows use are understood; anything else fails the
test that meets it, so a workflow change cannot slip past this runner unexercised."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

_EXPRESSION = re.compile(r"\$\{\{\s*(.*?)\s*\}\}")


@dataclass
class Context:
    event: str  # push | pull_request | schedule
    ref: str = "refs/heads/main"
    base_sha: str = ""  # a pull request's base commit
    from_fork: bool = False  # a pull request from another repository
    default_branch: str = "main"
    matrix: dict[str, Any] = field(default_factory=dict)
    secrets: dict[str, str] = field(default_factory=dict)
    needs_outputs: dict[str, dict[str, str]] = field(default_factory=dict)
    outcomes: dict[str, str] = field(default_factory=dict)  # step id → success | failure | skipped

    def value(self, expression: str) -> str:
        """The few expressions the workflows use in `env:`, `with:` and names."""
        if expression.startswith("matrix."):
            value = self.matrix[expression.removeprefix("matrix.")]
            return " ".join(value) if isinstance(value, list) else str(value)
        if expression.startswith("secrets."):
            return self.secrets.get(expression.removeprefix("secrets."), "")
        if expression == "github.event.pull_request.base.sha":
            return self.base_sha if self.event == "pull_request" else ""
        match = re.fullmatch(r"needs\.(\w+)\.outputs\.(\w+)", expression)
        if match:
            return self.needs_outputs[match.group(1)][match.group(2)]
        raise AssertionError(f"the workflow runner does not know the expression ${{{{ {expression} }}}}: teach tests/workflow_runner.py")

    def substitute(self, text: str) -> str:
        return _EXPRESSION.sub(lambda m: self.value(m.group(1)), text)

    def condition(self, text: str | None) -> bool:
        """The `if:` conditions the workflows use, each with the meaning GitHub gives it."""
        if text is None:
            return "failure" not in self.outcomes.values()  # success(): every earlier step passed
        normal = " ".join(_EXPRESSION.sub(lambda m: m.group(1), text).split())
        on_default_or_tag = self.ref == f"refs/heads/{self.default_branch}" or self.ref.startswith("refs/tags/")
        known: dict[str, Callable[[], bool]] = {
            "always()": lambda: True,
            "github.event_name == 'schedule'": lambda: self.event == "schedule",
            "!cancelled() && steps.build.outcome != 'skipped'": lambda: self.outcomes.get("build", "skipped") != "skipped",
            "needs.plan.outputs.any == 'true' && (github.event_name != 'pull_request' || "
            "github.event.pull_request.head.repo.full_name == github.repository)": lambda: (
                self.needs_outputs["plan"]["any"] == "true" and (self.event != "pull_request" or not self.from_fork)
            ),
            # Not cancelled: this runner runs a job at a time and is never cancelled.
            "!cancelled() && needs.plan.outputs.any == 'true' && (github.event_name != 'pull_request' || "
            "github.event.pull_request.head.repo.full_name == github.repository)": lambda: (
                self.needs_outputs["plan"]["any"] == "true" and (self.event != "pull_request" or not self.from_fork)
            ),
            "github.event_name == 'push' && (github.ref == format('refs/heads/{0}', github.event.repository.default_branch) "
            "|| startsWith(github.ref, 'refs/tags/'))": lambda: self.event == "push" and on_default_or_tag,
            # The plan job ran (this runner runs jobs in order, never cancelled).
            "!cancelled() && needs.plan.result == 'success' && github.event_name == 'push' && (github.ref == "
            "format('refs/heads/{0}', github.event.repository.default_branch) || startsWith(github.ref, 'refs/tags/'))": lambda: (
                self.event == "push" and on_default_or_tag
            ),
        }
        if normal not in known:
            raise AssertionError(f"the workflow runner does not know the condition {normal!r}: teach tests/workflow_runner.py")
        return known[normal]()


@dataclass
class StepResult:
    name: str
    outcome: str  # success | failure | skipped
    output: str = ""
    outputs: dict[str, str] = field(default_factory=dict)


def load(path: Path) -> dict[str, Any]:
    data = yaml.safe_load(path.read_text())
    data["on"] = data.pop(True)  # YAML 1.1 reads the key `on` as true
    return data


class JobRunner:
    def __init__(self, workflow: dict[str, Any], job: str, ctx: Context, workspace: Path, temp: Path, artifacts: Path,
                 overrides: dict[str, str] | None = None) -> None:  # fmt: skip
        self.workflow, self.job, self.ctx = workflow, workflow["jobs"][job], ctx
        self.workspace, self.temp, self.artifacts = workspace, temp, artifacts
        # Environment that this machine sets differently from a GPU runner (a CPU, a local registry…).
        self.overrides = overrides or {}
        self.temp.mkdir(parents=True, exist_ok=True)
        self.step_outputs: dict[str, dict[str, str]] = {}
        self.summary = temp / "step-summary.md"
        self.env_file, self.path_file = temp / "github-env", temp / "github-path"
        for f in (self.summary, self.env_file, self.path_file):
            f.write_text("")

    def _environment(self, step: dict[str, Any], output: Path) -> dict[str, str]:
        env = dict(os.environ)
        for layer in (self.workflow.get("env", {}), self.job.get("env", {}), step.get("env", {})):
            env |= {k: self.ctx.substitute(str(v)) for k, v in layer.items()}
        env |= self.overrides
        for line in self.env_file.read_text().splitlines():
            if "=" in line:
                key, value = line.split("=", 1)
                env[key] = value
        paths = [p for p in self.path_file.read_text().splitlines() if p]
        env["PATH"] = os.pathsep.join([*reversed(paths), env.get("PATH", "")])
        env |= {
            "CI": "true",
            "GITHUB_ACTIONS": "true",
            "GITHUB_EVENT_NAME": self.ctx.event,
            "GITHUB_REF": self.ctx.ref,
            "GITHUB_WORKSPACE": str(self.workspace),
            "RUNNER_TEMP": str(self.temp),
            "GITHUB_ENV": str(self.env_file),
            "GITHUB_PATH": str(self.path_file),
            "GITHUB_OUTPUT": str(output),
            "GITHUB_STEP_SUMMARY": str(self.summary),
        }
        return env

    def _action(self, step: dict[str, Any]) -> str:
        action = step["uses"].split("@", 1)[0]
        with_ = {k: self.ctx.substitute(str(v)) for k, v in step.get("with", {}).items()}
        if action == "actions/checkout":
            # A checkout starts clean: nothing an earlier job on this runner left in the workspace.
            subprocess.run(["git", "clean", "-ffdxq"], cwd=self.workspace, check=True)
            return "the workspace is the checkout, cleaned"
        if action == "actions/setup-python":
            return "this machine's python3"
        if action == "actions/upload-artifact":
            source, target = self.workspace / with_["path"], self.artifacts / with_["name"]
            if not source.exists():
                assert with_.get("if-no-files-found") == "warn", f"{source} missing"
                return f"nothing at {source}"
            shutil.rmtree(target, ignore_errors=True)
            shutil.copytree(source, target) if source.is_dir() else (target.mkdir(parents=True), shutil.copy(source, target))
            return f"uploaded {source} as {with_['name']}"
        if action == "actions/download-artifact":
            source, target = self.artifacts / with_["name"], self.workspace / with_["path"]
            shutil.copytree(source, target, dirs_exist_ok=True)
            return f"downloaded {with_['name']} to {target}"
        raise AssertionError(f"the workflow runner does not know the action {action}: teach tests/workflow_runner.py")

    def run(self, timeout: float = 3600) -> list[StepResult]:
        results = []
        for number, step in enumerate(self.job["steps"]):
            name = step.get("name") or step.get("uses") or f"step {number}"
            if not self.ctx.condition(step.get("if")):
                results.append(StepResult(name, "skipped"))
                self.ctx.outcomes[step.get("id", f"#{number}")] = "skipped"
                continue
            output = self.temp / f"output-{number}"
            output.write_text("")
            if "uses" in step:
                result = StepResult(name, "success", self._action(step))
            else:
                assert "${{" not in step["run"], f"{name}: expressions belong in env:, not in the script (template injection)"
                done = subprocess.run(["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", step["run"]], cwd=self.workspace,
                                      env=self._environment(step, output), capture_output=True, text=True, timeout=timeout)  # fmt: skip
                outputs = dict(line.split("=", 1) for line in output.read_text().splitlines() if "=" in line)
                result = StepResult(name, "success" if done.returncode == 0 else "failure", done.stdout + done.stderr, outputs)
            results.append(result)
            self.ctx.outcomes[step.get("id", f"#{number}")] = result.outcome
            if "id" in step:
                self.step_outputs[step["id"]] = result.outputs
        return results

    def outputs(self) -> dict[str, str]:
        """The job's `outputs:`, from its steps' (each `${{ steps.ID.outputs.NAME }}`)."""
        found = {}
        for name, expression in self.job.get("outputs", {}).items():
            match = re.fullmatch(r"\$\{\{\s*steps\.(\w+)\.outputs\.(\w+)\s*\}\}", expression)
            assert match, f"the workflow runner does not know the job output {expression}"
            found[name] = self.step_outputs.get(match.group(1), {}).get(match.group(2), "")
        return found
