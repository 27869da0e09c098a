"""HEAD of an app repository follows the branch that deploys (so `git clone` checks it out)."""

from __future__ import annotations

from pathlib import Path

from dulwich.objects import Commit, Tree
from dulwich.repo import Repo

from paas.git_receiver.repo_head import fix_all, follow_deploy_branch

MAIN, MASTER = b"refs/heads/main", b"refs/heads/master"


def bare(path: Path, *branches: bytes) -> Repo:
    """A bare repo as the receiver makes it, with one commit on each branch. HEAD -> master, as
    dulwich makes it where no init.defaultBranch is configured."""
    repo = Repo.init_bare(str(path), mkdir=True)
    repo.refs.set_symbolic_ref(b"HEAD", MASTER)
    tree = Tree()
    commit = Commit()
    commit.tree = tree.id
    commit.author = commit.committer = b"t <t@t>"
    commit.author_time = commit.commit_time = 0
    commit.author_timezone = commit.commit_timezone = 0
    commit.message = b"x"
    repo.object_store.add_objects([(tree, None), (commit, None)])
    for ref in branches:
        repo.refs[ref] = commit.id
    return repo


def head(repo: Repo) -> bytes:
    return repo.refs.get_symrefs()[b"HEAD"]


def test_a_first_push_to_main_points_head_at_main(tmp_path: Path) -> None:
    repo = bare(tmp_path / "a.git", MAIN)
    assert follow_deploy_branch(repo, MAIN) == MAIN
    assert head(repo) == MAIN
    assert follow_deploy_branch(repo, MAIN) is None  # already right: nothing to do


def test_head_on_an_existing_branch_is_kept(tmp_path: Path) -> None:
    repo = bare(tmp_path / "a.git", MASTER)
    assert follow_deploy_branch(repo, MASTER) is None  # master-only keeps master
    repo.refs[MAIN] = repo.refs[MASTER]
    assert follow_deploy_branch(repo, MAIN) is None  # a later push to main does not take over
    assert head(repo) == MASTER


def test_a_refused_or_non_deploy_push_leaves_head_alone(tmp_path: Path) -> None:
    repo = bare(tmp_path / "a.git", b"refs/heads/feature")
    assert follow_deploy_branch(repo, MAIN) is None  # the first push was refused: no main
    assert follow_deploy_branch(repo, b"refs/heads/feature") is None
    assert head(repo) == MASTER


def test_server_start_fixes_old_repos_whose_head_dangles(tmp_path: Path) -> None:
    bare(tmp_path / "old.git", MAIN).close()
    bare(tmp_path / "both.git", MAIN, MASTER).close()
    bare(tmp_path / "empty.git").close()
    (tmp_path / "junk.git").mkdir()
    assert fix_all(tmp_path) == {"old": MAIN}
    assert head(Repo(str(tmp_path / "old.git"))) == MAIN
    assert head(Repo(str(tmp_path / "empty.git"))) == MASTER
