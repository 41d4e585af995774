"""services/git.py on working copies: real repositories in tmp dirs, real git."""

from __future__ import annotations

import os
import subprocess

import pytest

from sloth_runner.errors import IntegrationError
from sloth_runner.services import git

IDENTITY = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@x", "GIT_COMMITTER_NAME": "t",
            "GIT_COMMITTER_EMAIL": "t@x"}


@pytest.fixture(autouse=True)
def identity(monkeypatch):
    for name, value in IDENTITY.items():
        monkeypatch.setenv(name, value)


def sh(*args, cwd):
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True,
                          text=True).stdout


def origin(path):
    """A repository with two commits on main and a branch `feature` with a third."""
    path.mkdir()
    sh("init", "-q", "-b", "main", cwd=path)
    (path / "app.txt").write_text("v1\n")
    sh("add", ".", cwd=path)
    sh("commit", "-qm", "first", cwd=path)
    (path / "app.txt").write_text("v2\n")
    sh("commit", "-qam", "second", cwd=path)
    sh("checkout", "-qb", "feature", cwd=path)
    (path / "feature.txt").write_text("f\n")
    sh("add", ".", cwd=path)
    sh("commit", "-qm", "feature work", cwd=path)
    sh("checkout", "-q", "main", cwd=path)
    return path


def test_clone_checkout_and_pull_a_real_repository(tmp_path):
    src = origin(tmp_path / "origin")
    repo = git.clone(str(src), str(tmp_path / "copy"))
    assert repo == {"path": str(tmp_path / "copy"), "url": str(src), "exists": False,
                    "cloned": True}
    assert (tmp_path / "copy" / "app.txt").read_text() == "v2\n"
    done = git.checkout(repo["path"], "feature")
    assert done["success"] and (tmp_path / "copy" / "feature.txt").exists()
    assert git.current_branch(repo["path"]) == "feature"
    git.checkout(repo["path"], "main")
    (src / "app.txt").write_text("v3\n")
    sh("commit", "-qam", "third", cwd=src)
    pulled = git.pull(repo["path"])
    assert (tmp_path / "copy" / "app.txt").read_text() == "v3\n"
    assert pulled["head"] == sh("rev-parse", "HEAD", cwd=src).strip()


def test_clone_with_a_branch_and_depth(tmp_path):
    src = origin(tmp_path / "origin")
    repo = git.clone(f"file://{src}", str(tmp_path / "shallow"), branch="feature", depth=1)
    assert git.current_branch(repo["path"]) == "feature"
    assert sh("rev-list", "--count", "HEAD", cwd=repo["path"]).strip() == "1"


def test_a_second_clone_keeps_the_existing_repository_unless_asked_to_start_again(tmp_path):
    src = origin(tmp_path / "origin")
    first = git.clone(str(src), str(tmp_path / "copy"))
    (tmp_path / "copy" / "local.txt").write_text("mine")
    again = git.clone(str(src), str(tmp_path / "copy"))
    assert again["exists"] is True and again["cloned"] is False
    assert (tmp_path / "copy" / "local.txt").exists()
    fresh = git.clone(str(src), first["path"], clean=True)
    assert fresh["cloned"] is True and not (tmp_path / "copy" / "local.txt").exists()


def test_clone_refuses_a_directory_that_holds_other_things(tmp_path):
    src = origin(tmp_path / "origin")
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "notes.txt").write_text("keep me")
    with pytest.raises(IntegrationError, match="exists and is not a git repository"):
        git.clone(str(src), str(busy))
    assert (busy / "notes.txt").read_text() == "keep me"
    empty = tmp_path / "empty"
    empty.mkdir()
    assert git.clone(str(src), str(empty))["cloned"] is True


def test_errors_never_show_the_credentials_of_a_url(tmp_path):
    url = "https://deployer:ghp_s3cr3tT0ken@127.0.0.1:1/org/repo.git"
    with pytest.raises(IntegrationError) as caught:
        git.clone(url, str(tmp_path / "x"))
    message = str(caught.value)
    assert "git clone https://127.0.0.1:1/org/repo.git failed" in message
    assert "ghp_s3cr3tT0ken" not in message and "deployer" not in message
    assert git.redact("fatal: 'https://u:p@h/x' and ssh://git@h2/y") == \
        "fatal: 'https://h/x' and ssh://h2/y"


def test_add_commit_tag_push_and_status(tmp_path):
    src = origin(tmp_path / "origin")
    sh("config", "receive.denyCurrentBranch", "ignore", cwd=src)
    repo = git.clone(str(src), str(tmp_path / "copy"))["path"]
    assert git.status(repo) == {"clean": True, "files": [], "branch": "main"}
    with open(os.path.join(repo, "VERSION"), "w") as fh:
        fh.write("1.2.3\n")
    status = git.status(repo)
    assert status["clean"] is False and status["files"] == ["?? VERSION"]
    git.add(repo, ".")
    git.commit(repo, "bump to 1.2.3")
    git.tag(repo, "v1.2.3", "release 1.2.3")
    git.push(repo, "origin", "main", follow_tags=True)
    assert sh("log", "-1", "--format=%s", "main", cwd=src).strip() == "bump to 1.2.3"
    assert sh("tag", cwd=src).split() == ["v1.2.3"]
    with pytest.raises(IntegrationError, match="needs a message"):
        git.commit(repo, "  ")


def test_is_repo_and_open_repo(tmp_path):
    src = origin(tmp_path / "origin")
    (src / "sub").mkdir()
    assert git.is_repo(str(src)) is True
    assert git.is_repo(str(src / "sub")) is False  # inside one is not the top of one
    assert git.is_repo(str(tmp_path / "nothing")) is False
    copy = git.clone(f"file://{src}", str(tmp_path / "copy"))
    opened = git.open_repo(copy["path"])
    assert opened["exists"] is True and opened["url"] == f"file://{src}"
    with pytest.raises(IntegrationError, match="is not a git repository"):
        git.open_repo(str(tmp_path))


def test_refs_and_remotes_cannot_be_options(tmp_path):
    src = origin(tmp_path / "origin")
    for bad in ("--orphan=x", "-b"):
        with pytest.raises(IntegrationError, match="is not a revision"):
            git.checkout(str(src), bad)
    with pytest.raises(IntegrationError, match="not a remote or branch name"):
        git.pull(str(src), "--upload-pack=touch /tmp/pwned")
    with pytest.raises(IntegrationError, match="must be a string"):
        git.clone("--upload-pack=x", str(tmp_path / "y"))
