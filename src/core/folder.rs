//! The board's folder as a place: where it is now, judged from identities the shell gathered,
//! and which claims a runtime that does not serve the board must leave to the one that does.
//!
//! Owns the rules only: [`judge`] (the folder held open is still at its path, was moved,
//! was replaced by another folder, or is gone), [`relocated`] (a path under the old place, at
//! the new one) and [`served_claims`]. No I/O: `runtime::home` stats, opens and watches.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use crate::core::board::Board;
use crate::core::plan::LockView;
use crate::core::status::Status;

/// What makes a folder that folder, whatever its name: its device and inode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Identity {
    pub dev: u64,
    pub ino: u64,
}

/// What became of the folder a runtime holds open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Whereabouts {
    /// Its path still names it.
    Here,
    /// It now lives at this other path (renamed or moved): the board went with it.
    Moved(PathBuf),
    /// Another folder stands at its path: it was deleted (or taken where it cannot be
    /// followed) and a new one was created, a fresh clone, say.
    Replaced,
    /// Nothing stands at its path, and it cannot be followed.
    Gone,
}

/// What the shell saw of the folder at one instant.
#[derive(Debug, Clone)]
pub struct Sighting<'a> {
    /// The folder's path as the runtime knows it.
    pub path: &'a Path,
    /// The folder held open.
    pub held: Identity,
    /// The folder held open has been deleted (no link to it is left).
    pub held_deleted: bool,
    /// What `path` names now, when that is a folder.
    pub at_path: Option<Identity>,
    /// Where the operating system says the folder held open is now, and what that path names.
    pub held_now_at: Option<(&'a Path, Option<Identity>)>,
}

/// Judges a sighting. A folder both moved away and replaced at its old path counts as moved:
/// the board file went with the folder.
pub fn judge(s: &Sighting) -> Whereabouts {
    if s.at_path == Some(s.held) {
        return Whereabouts::Here;
    }
    if !s.held_deleted
        && let Some((now, Some(id))) = s.held_now_at
        && id == s.held
        && now != s.path
    {
        return Whereabouts::Moved(now.to_path_buf());
    }
    if s.at_path.is_some() {
        Whereabouts::Replaced
    } else {
        Whereabouts::Gone
    }
}

/// `path` as it is once the folder `from` lives at `to`; `None` when `path` is not under `from`.
pub fn relocated(path: &Path, from: &Path, to: &Path) -> Option<PathBuf> {
    let rest = path.strip_prefix(from).ok()?;
    Some(if rest.as_os_str().is_empty() {
        to.to_path_buf()
    } else {
        to.join(rest)
    })
}

/// The claims a runtime that does not serve the board (a `once` beside a `run`) must treat as
/// live although it sees no lock for them: `running` in the shared agent's name, not its own
/// runs. While a `run` serves the board such a claim is the `run`'s (its lock folder may have
/// been removed and not yet put back), and the `run` itself resets it if its run is over.
pub fn served_claims(
    board: &Board,
    agent: &str,
    locks: &BTreeMap<String, LockView>,
    active: &BTreeSet<String>,
) -> Vec<String> {
    board
        .tasks
        .iter()
        .filter(|t| t.id_problem.is_none())
        .filter(|t| matches!(t.status(), Some(Status::Running { agent: a, .. }) if a == agent))
        .filter(|t| !locks.contains_key(t.id.as_str()) && !active.contains(t.id.as_str()))
        .map(|t| t.id.to_string())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: Identity = Identity { dev: 1, ino: 10 };
    const B: Identity = Identity { dev: 1, ino: 20 };

    fn sighting<'a>(
        at_path: Option<Identity>,
        held_deleted: bool,
        held_now_at: Option<(&'a Path, Option<Identity>)>,
    ) -> Sighting<'a> {
        Sighting {
            path: Path::new("/w/proj"),
            held: A,
            held_deleted,
            at_path,
            held_now_at,
        }
    }

    #[test]
    fn a_folder_still_at_its_path_is_here() {
        let here = Path::new("/w/proj");
        assert_eq!(
            judge(&sighting(Some(A), false, Some((here, Some(A))))),
            Whereabouts::Here
        );
    }

    #[test]
    fn a_renamed_folder_is_followed_even_when_its_old_name_is_taken_again() {
        let new = Path::new("/w/proj2");
        let moved = Whereabouts::Moved(new.to_path_buf());
        assert_eq!(judge(&sighting(None, false, Some((new, Some(A))))), moved);
        assert_eq!(
            judge(&sighting(Some(B), false, Some((new, Some(A))))),
            moved
        );
    }

    #[test]
    fn a_deleted_folder_is_replaced_or_gone_never_followed() {
        let ghost = Path::new("/w/proj (deleted)");
        assert_eq!(
            judge(&sighting(Some(B), true, Some((ghost, None)))),
            Whereabouts::Replaced
        );
        assert_eq!(
            judge(&sighting(None, true, Some((ghost, None)))),
            Whereabouts::Gone
        );
        // Where the system cannot say where the folder went, it cannot be followed.
        assert_eq!(judge(&sighting(None, false, None)), Whereabouts::Gone);
        // A path the system names that holds another folder is no sighting of ours.
        let other = Path::new("/w/elsewhere");
        assert_eq!(
            judge(&sighting(None, false, Some((other, Some(B))))),
            Whereabouts::Gone
        );
    }

    #[test]
    fn paths_under_the_old_place_move_to_the_new_one() {
        let (from, to) = (Path::new("/w/proj"), Path::new("/w/proj2"));
        assert_eq!(
            relocated(Path::new("/w/proj/.taskboard/runs/A-1"), from, to),
            Some(PathBuf::from("/w/proj2/.taskboard/runs/A-1"))
        );
        assert_eq!(relocated(from, from, to), Some(to.to_path_buf()));
        assert_eq!(relocated(Path::new("/w/projx/a"), from, to), None);
        assert_eq!(relocated(Path::new("/etc/taskboard.toml"), from, to), None);
    }

    #[test]
    fn only_lockless_claims_in_the_shared_agents_name_are_left_to_the_serving_run() {
        let text = "### A-1: a\n- status: running:taskboard:2026-11-22T15:25Z\n\n\
                    ### B-2: b\n- status: running:someone:2026-11-22T15:25Z\n\n\
                    ### C-3: c\n- status: running:taskboard:2026-11-22T15:25Z\n\n\
                    ### D-4: d\n- status: running:taskboard:2026-11-22T15:25Z\n\n\
                    ### E-5: e\n- status: ready\n";
        let board = Board::parse(text);
        let locks = BTreeMap::from([("C-3".to_string(), LockView::Live)]);
        let active = BTreeSet::from(["D-4".to_string()]);
        assert_eq!(
            served_claims(&board, "taskboard", &locks, &active),
            vec!["A-1".to_string()]
        );
    }
}
