//! Parsing a board: which headings are tasks, their fields, and the exact byte range of each
//! status value.
//!
//! Owns the reading of Markdown structure (through `pulldown-cmark`'s source offsets, the only
//! Markdown parser in the crate). It never changes text (that is `writeback`) and never judges
//! whether a board is healthy (that is `lint`). Parsing is total: any `&str` gives a `Board`.
//!
//! A task is a top-level ATX heading whose text starts with a task ID. Its fields are the
//! `key: value` items of a bullet list that is the first block under the heading. Its block runs
//! to the next top-level heading of the same or a higher level. A heading that carries a
//! `status` field but no valid ID is still reported as a task, with an [`IdProblem`], so that
//! lint can flag it and the runtime can refuse it.
//!
//! Beside the tasks a board keeps a [`Glance`] at each (its ID's hash, its status's kind, the
//! keys lint and the planner look for): the walks over every task of a long board on every
//! pass read those and go to a task only when the glance asks for more.
//!
//! [`conflict_markers`] finds the marker lines a git merge leaves in the text; what they mean
//! for the board is for lint and the runtime to say.

use std::collections::HashSet;
use std::hash::BuildHasherDefault;
use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use pulldown_cmark::{Event, HeadingLevel, Options, Parser, Tag};

use crate::core::hash::Fnv;
use crate::core::status::{Status, StatusError, StatusKind, is_task_id};

mod conflicts;
mod inline;
mod pieces;
mod text;
pub use conflicts::{Marker, MarkerKind, conflict_markers, conflict_regions, conflict_summary};
pub use pieces::{Backwards, LEAST_PIECE, Parallel, Serial};
pub use text::Text;

/// A parsed board. Ranges are byte offsets into the text it was parsed from (BOM included).
#[derive(Debug, Clone, PartialEq)]
pub struct Board {
    pub tasks: Vec<Task>,
    /// Byte offset where each line starts, for `line:column` positions.
    line_starts: Vec<usize>,
    /// The top-level blocks, kept so that [`Board::reparse`] can reuse the unchanged ones.
    blocks: Vec<Block>,
    /// Where the bullet lists' own items start, in order; each list holds a range of them.
    items: Vec<usize>,
    /// The tasks by ID, made on the first lookup by ID ([`Board::with_id`]).
    ids: TasksById,
    /// How many tasks there are at each heading level.
    levels: TaskLevels,
    /// A glance at each task, in the order of `tasks`.
    glances: Vec<Glance>,
}

/// What a walk over every task of a board asks of each first, packed beside the tasks: the
/// hash of its ID, the kind of its valid status, whether its ID is usable and which keys it
/// has. Planning and linting a long board, where most tasks are long settled, read these
/// (16 bytes a task, in a row) and go to a task itself only when the glance asks for more.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Glance {
    id_hash: u64,
    /// `None`: no status, or one that does not parse.
    status: Option<StatusKind>,
    id_usable: bool,
    keys: KeysSeen,
}

impl Glance {
    fn of(task: &Task) -> Glance {
        Glance {
            id_hash: task.id_hash,
            status: task.status().map(Status::kind),
            id_usable: task.id_problem.is_none(),
            keys: task.keys,
        }
    }

    /// The kind of the task's status, when it has a valid one.
    pub fn status(&self) -> Option<StatusKind> {
        self.status
    }

    /// Whether the task's ID is usable (no [`IdProblem`]).
    pub fn id_usable(&self) -> bool {
        self.id_usable
    }

    /// Whether the task has a `touches`, a `base_branch` or a repeated key.
    pub fn has_keys_to_check(&self) -> bool {
        self.keys.touches || self.keys.base_branch || self.keys.repeated
    }
}

/// How many of a board's tasks have each heading level. A re-parse looks back for the tasks
/// whose blocks reach into the span it parsed again; the highest level a task has tells it
/// where to stop, rather than at the board's first task.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct TaskLevels([u32; 6]);

impl TaskLevels {
    fn of(tasks: &[Task]) -> TaskLevels {
        let mut levels = TaskLevels::default();
        for task in tasks {
            levels.add(task, 1);
        }
        levels
    }

    /// Counts `task` in (`by` 1) or out (`by` -1).
    fn add(&mut self, task: &Task, by: i32) {
        let at = usize::from(task.level.clamp(1, 6)) - 1;
        self.0[at] = self.0[at].wrapping_add_signed(by);
    }

    /// The highest heading level (the smallest number) a task has; 7 when there are none.
    fn highest(&self) -> u8 {
        (1..=6)
            .find(|&l| self.0[usize::from(l) - 1] > 0)
            .unwrap_or(7)
    }
}

/// One replacement in a text: the bytes `replaced` gave way to `len` others.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Edit {
    pub replaced: Range<usize>,
    pub len: usize,
}

/// Each task's position under the hash of its ID, sorted: the tasks sharing an ID sit
/// together, in board order. A lookup by ID costs a binary search instead of a walk through
/// the board, which the runtime would otherwise pay for every task it starts or settles.
/// Made once per board (a board's tasks change only by parsing) and kept by
/// [`Board::reparse`] when no task's ID or place changed, so it is no part of what the board
/// is: two boards are equal whatever their indexes hold. With it, what is read from it alone:
/// which tasks are the first with their usable ID ([`Board::first_usable_ids`]), which lint
/// asks on every pass. Its `generation` names the tasks' IDs as a whole ([`Board::ids_generation`]).
#[derive(Debug, Clone)]
struct TasksById {
    index: OnceLock<Vec<(u64, u32)>>,
    first_usable: OnceLock<Vec<bool>>,
    generation: u64,
}

impl Default for TasksById {
    /// An empty index with a generation no other index of this process has had.
    fn default() -> TasksById {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        TasksById {
            index: OnceLock::new(),
            first_usable: OnceLock::new(),
            generation: NEXT.fetch_add(1, Ordering::Relaxed),
        }
    }
}

impl PartialEq for TasksById {
    fn eq(&self, _: &TasksById) -> bool {
        true
    }
}

fn id_hash(id: &str) -> u64 {
    crate::core::hash::content_hash(id.as_bytes())
}

/// Task IDs kept as the hashes the parse takes of a task's ID, asked about a board's tasks:
/// whether a task's ID may be among them is answered from the task alone, without reading the
/// ID's text, a cache miss of its own for each task of a long board. Two IDs may share a hash:
/// `false` means the ID is not among them, `true` that it may be (look it up).
#[derive(Debug, Clone, Default)]
pub struct IdFilter(HashSet<u64, BuildHasherDefault<Fnv>>);

impl IdFilter {
    pub fn insert(&mut self, id: &str) {
        self.0.insert(id_hash(id));
    }

    /// Whether the ID of the task `glance` is of may be one inserted: `false` only when it is
    /// none of them.
    pub fn may_hold(&self, glance: &Glance) -> bool {
        !self.0.is_empty() && self.0.contains(&glance.id_hash)
    }
}

impl<'a> FromIterator<&'a str> for IdFilter {
    fn from_iter<I: IntoIterator<Item = &'a str>>(ids: I) -> IdFilter {
        let mut filter = IdFilter::default();
        for id in ids {
            filter.insert(id);
        }
        filter
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Task {
    /// The ID as written (for a task with an [`IdProblem`], the first word of its heading).
    pub id: Text,
    pub id_problem: Option<IdProblem>,
    pub title: Text,
    pub level: u8,
    /// The heading line, line ending included.
    pub heading: Range<usize>,
    /// Heading through description: up to the next heading of the same or a higher level.
    pub block: Range<usize>,
    /// Where each field lies; [`Task::fields`] reads them from `text`.
    fields: Vec<FieldRanges>,
    /// The task's text from its heading through its last field, which every field's key and
    /// value lie in: one shared piece per task rather than one per key and value, as each
    /// piece costs an atomic reference count, taken when the board is parsed and given back
    /// when it is dropped.
    text: Text,
    pub status: Option<StatusField>,
    /// The hash of `id`, taken while the parse has its bytes at hand: the task's [`Glance`],
    /// and through it the index by ID, takes it without reading the ID again from wherever it
    /// lies in the board's text.
    id_hash: u64,
    /// Which keys the runtime asks about on every pass are among `fields`.
    keys: KeysSeen,
}

/// What a task's field keys hold that a pass asks of every task of the board (the planner and
/// lint, on every save), noted by the parse while it has the keys at hand: asked of a task
/// that has none of them, the answer comes without reading its text. Few tasks have any.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct KeysSeen {
    touches: bool,
    base_branch: bool,
    /// A key that is there twice (keys are case-insensitive).
    repeated: bool,
}

impl KeysSeen {
    fn of(text: &str, fields: &[FieldRanges]) -> KeysSeen {
        let key = |f: &FieldRanges| &text[f.key.clone()];
        let has = |name: &str| fields.iter().any(|f| key(f).eq_ignore_ascii_case(name));
        let repeated = (1..fields.len()).any(|n| {
            let this = key(&fields[n]);
            fields[..n]
                .iter()
                .any(|f| key(f).eq_ignore_ascii_case(this))
        });
        KeysSeen {
            touches: has("touches"),
            base_branch: has("base_branch"),
            repeated,
        }
    }
}

/// Why a heading that looks like a task cannot be used as one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdProblem {
    /// Not of the form `LETTERS-DIGITS`, but harmless as a file name.
    Malformed,
    /// Would escape or misname a lock folder or deadletter file (`/`, `..`, control characters).
    Unsafe,
}

/// A `key: value` field of a task, as [`Task::fields`] reads it from the task's text.
#[derive(Debug, Clone, PartialEq)]
pub struct Field<'t> {
    /// The key as written, without bold markers.
    pub key: &'t str,
    pub value: &'t str,
    pub key_range: Range<usize>,
    /// The value, without surrounding backticks when it is wrapped in them.
    pub value_range: Range<usize>,
    pub quoted: bool,
}

/// Where a field's key and value lie in the board's text.
#[derive(Debug, Clone, PartialEq)]
struct FieldRanges {
    key: Range<usize>,
    value: Range<usize>,
    quoted: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct StatusField {
    pub raw: Text,
    /// The token's bytes: exactly what a writeback replaces.
    pub range: Range<usize>,
    pub parsed: Result<Status, StatusError>,
}

impl Task {
    /// Moves every range by `delta` bytes.
    fn shift(&mut self, delta: isize) {
        self.heading = shift_by(&self.heading, delta);
        self.block = shift_by(&self.block, delta);
        for f in &mut self.fields {
            f.key = shift_by(&f.key, delta);
            f.value = shift_by(&f.value, delta);
        }
        if let Some(status) = &mut self.status {
            status.range = shift_by(&status.range, delta);
        }
    }

    /// The fields of the list under the heading, in order.
    pub fn fields(&self) -> impl Iterator<Item = Field<'_>> {
        self.fields.iter().map(|f| self.field_of(f))
    }

    /// The first field with this key (keys are case-insensitive).
    pub fn field(&self, key: &str) -> Option<Field<'_>> {
        (self.fields.iter())
            .find(|f| self.text_at(&f.key).eq_ignore_ascii_case(key))
            .map(|f| self.field_of(f))
    }

    fn field_of(&self, f: &FieldRanges) -> Field<'_> {
        Field {
            key: self.text_at(&f.key),
            value: self.text_at(&f.value),
            key_range: f.key.clone(),
            value_range: f.value.clone(),
            quoted: f.quoted,
        }
    }

    /// `range` of the board's text, which lies in the task's `text`.
    fn text_at(&self, range: &Range<usize>) -> &str {
        let at = self.heading.start;
        &self.text[range.start - at..range.end - at]
    }

    /// The parsed status, when there is one and it is valid.
    pub fn status(&self) -> Option<&Status> {
        self.status.as_ref().and_then(|s| s.parsed.as_ref().ok())
    }

    /// Whether the task has a `touches` field (the same as `field("touches").is_some()`,
    /// without reading the task's text).
    pub fn declares_touches(&self) -> bool {
        self.keys.touches
    }

    /// The route named by the `route` field, if any.
    pub fn route(&self) -> Option<&str> {
        self.field("route").map(|f| f.value)
    }

    /// Usable by the runtime: a valid ID and a valid status.
    pub fn is_actionable(&self) -> bool {
        self.id_problem.is_none() && self.status().is_some()
    }
}

impl Board {
    pub fn parse(text: &str) -> Board {
        pieces::parse_whole(text)
    }

    /// The board of `new_text`, given this board of `old_text`: always equal to
    /// `Board::parse(new_text)`. When the edit lies between two top-level ATX headings whose
    /// lines it leaves alone, only the blocks between them are parsed again and the rest is
    /// reused, so a one-line save costs about one task's block, not the whole board.
    pub fn reparse(self, old_text: &str, new_text: &str) -> Board {
        if old_text == new_text {
            return self;
        }
        match self.splice_edit(old_text, new_text) {
            Ok(board) => board,
            Err(()) => Board::parse(new_text),
        }
    }

    /// [`Board::reparse`] for a text edited at several places: `edits` are the ranges of
    /// `old_text` replaced, in order and apart, each with the length of what replaced it;
    /// `new_text` is the result. Always equal to `Board::parse(new_text)`, whatever `edits`
    /// say; they only choose where to re-parse. One re-parse would span from the first edit to
    /// the last, which for a write that settles tasks all over a long board is most of it;
    /// instead each run of nearby edits is re-parsed on its own, last to first, through the
    /// texts in between (a copy of the text each, cheaper than parsing what lies between).
    pub fn reparse_edits(self, old_text: &str, new_text: &str, edits: &[Edit]) -> Board {
        let mut board = self;
        let mut text = old_text;
        let steps = edit_steps(old_text, new_text, edits);
        for next in &steps {
            board = board.reparse(text, next);
            text = next;
        }
        board.reparse(text, new_text)
    }

    /// Why this is exact: at the start of a top-level ATX heading no container and no leaf block
    /// is open (the heading closed them), so what follows parses alone exactly as in place. The
    /// re-parsed span starts at such a heading whose line lies in the common prefix, and ends
    /// with such a heading in the common suffix, which must still parse as the same top-level
    /// heading after the edit; otherwise this gives up and the caller parses the whole text.
    fn splice_edit(mut self, old_text: &str, new_text: &str) -> Result<Board, ()> {
        // Back in place below only if the tasks keep their IDs and places.
        let ids = std::mem::take(&mut self.ids);
        let base = markdown_start(new_text);
        if markdown_start(old_text) != base {
            return Err(());
        }
        let (prefix, suffix) = common_ends(old_text.as_bytes(), new_text.as_bytes());
        let is_atx = |b: &Block| matches!(b.kind, BlockKind::Heading { atx: true, .. });
        let blocks = &self.blocks;
        // The last heading whose whole line, `\n` included, is unchanged and ahead of the edit.
        // Only `\n` bounds what a line's parse reads: pulldown-cmark ends lines at a lone `\r`
        // too, but reads a fence's info string on to the next `\n`.
        let first = blocks.partition_point(|b| b.range.start < prefix);
        let newline_at = |i: usize| old_text.as_bytes().get(i) == Some(&b'\n');
        let a = blocks[..first]
            .iter()
            .rposition(|b| is_atx(b) && b.range.end <= prefix && newline_at(b.range.end - 1));
        let (a, start) = a.map_or((0, base), |a| (a, blocks[a].range.start));
        if blocks[..a].iter().any(|b| b.range.end > start) {
            return Err(());
        }
        // The first heading after the edit whose line, and the `\n` before it, are unchanged, and
        // whose line ends in `\n` or at the end of the text.
        let changed_end = old_text.len() - suffix;
        let after = blocks.partition_point(|b| b.range.start <= changed_end);
        let b = (after..blocks.len()).find(|&i| {
            let r = &blocks[i].range;
            is_atx(&blocks[i])
                && newline_at(r.start - 1)
                && (newline_at(r.end - 1) || r.end == old_text.len())
        });
        let delta = new_text.len() as isize - old_text.len() as isize;
        let (b, end, old_end) = match b {
            Some(b) => (b, moved(blocks[b].range.end, delta), blocks[b].range.start),
            None => (blocks.len(), new_text.len(), old_text.len()),
        };
        let span = new_text.get(start..end).ok_or(())?;
        let (mut mid, mid_items) = top_level_blocks(span, start);
        if b < blocks.len() {
            let last = mid.pop().ok_or(())?;
            let want = &blocks[b];
            if last.kind != want.kind || last.range != shift_by(&want.range, delta) {
                return Err(());
            }
        }
        // The items of blocks `a..b` are replaced by those of `mid`.
        let items_at = |i: usize| {
            self.blocks
                .get(i)
                .map_or(self.items.len(), |b| b.items.start)
        };
        let (ia, ib) = (items_at(a), items_at(b));
        let (mid_len, mid_items_len) = (mid.len(), mid_items.len());
        for block in &mut mid {
            block.items = shift(&block.items, ia);
        }
        self.blocks.splice(a..b, mid);
        self.items.splice(ia..ib, mid_items);
        let items_delta = (ia + mid_items_len) as isize - ib as isize;
        for block in &mut self.blocks[a + mid_len..] {
            block.range = shift_by(&block.range, delta);
            block.items = shift_by(&block.items, items_delta);
        }
        for item in &mut self.items[ia + mid_items_len..] {
            *item = moved(*item, delta);
        }
        if self.splice_tasks(new_text, start..end, old_end, a..a + mid_len, delta) {
            self.ids = ids;
        }
        let changed = prefix..old_text.len() - suffix;
        splice_line_starts(&mut self.line_starts, new_text, changed, delta);
        Ok(self)
    }

    /// Replaces the tasks whose headings lie in `span.start..old_end` of the old text with those
    /// of `mid` (indices into the new blocks, which lie in `span` of the new text), moves the
    /// tasks after them by `delta`, and finds again the block ends of earlier tasks that reached
    /// into the re-parsed span. Returns whether every task kept its ID and its place in the
    /// list (an edit of statuses, descriptions or fields), so that the index by ID still holds.
    fn splice_tasks(
        &mut self,
        text: &str,
        span: Range<usize>,
        old_end: usize,
        mid: Range<usize>,
        delta: isize,
    ) -> bool {
        let start = span.start;
        let before = self.tasks.partition_point(|t| t.heading.start < start);
        let kept = self.tasks.partition_point(|t| t.heading.start < old_end);
        // A task's block ends at the next heading of its level or a higher one, so a task
        // followed, before `start`, by a task of its level or higher cannot reach past
        // `start`: looking back, only a task higher than every one seen since can, and once
        // one is as high as any task is, none before it can.
        let highest = self.levels.highest();
        let mut seen = u8::MAX;
        for task in self.tasks[..before].iter_mut().rev() {
            if seen <= highest {
                break;
            }
            if task.level >= seen {
                continue;
            }
            seen = task.level;
            if task.block.end > start {
                let i = self
                    .blocks
                    .partition_point(|b| b.range.start < task.heading.start);
                task.block.end = block_end(text, &self.blocks, i, task.level);
            }
        }
        // The new tasks' pieces share a copy of the span only, not of the whole text.
        let source = SharedCopy::new(text, span);
        let new: Vec<Task> = mid
            .filter_map(|i| task_at(text, &source, &self.blocks, &self.items, i))
            .collect();
        let new_len = new.len();
        let same_ids = new_len == kept - before
            && new
                .iter()
                .zip(&self.tasks[before..kept])
                .all(|(n, o)| n.id == o.id && n.id_problem == o.id_problem);
        for task in &self.tasks[before..kept] {
            self.levels.add(task, -1);
        }
        for task in &new {
            self.levels.add(task, 1);
        }
        self.glances
            .splice(before..kept, new.iter().map(Glance::of));
        self.tasks.splice(before..kept, new);
        for task in &mut self.tasks[before + new_len..] {
            task.shift(delta);
        }
        same_ids
    }

    /// The usable IDs that more than one task carries. The runtime runs and writes none of
    /// those tasks (which one the person meant is theirs to say), so they never count as
    /// runnable anywhere.
    pub fn duplicated_ids(&self) -> HashSet<&str> {
        (self.tasks.iter().zip(self.first_usable_ids()))
            .filter(|(t, first)| t.id_problem.is_none() && !**first)
            .map(|(t, _)| t.id.as_str())
            .collect()
    }

    /// A glance at each task, in the order of [`Board::tasks`].
    pub fn glances(&self) -> &[Glance] {
        &self.glances
    }

    /// The first task with this ID.
    pub fn task(&self, id: &str) -> Option<&Task> {
        self.with_id(id).next()
    }

    /// The one task with this ID: `None` when no task carries it, or more than one does.
    pub fn sole_task(&self, id: &str) -> Option<&Task> {
        let mut found = self.with_id(id);
        match (found.next(), found.next()) {
            (Some(task), None) => Some(task),
            _ => None,
        }
    }

    /// Every task with this ID, in board order (more than one: a duplicated ID).
    pub fn with_id<'b, 'i>(&'b self, id: &'i str) -> impl Iterator<Item = &'b Task> + use<'b, 'i> {
        self.places_of(id).map(|i| &self.tasks[i])
    }

    /// The place in `tasks` of every task with this ID, in board order.
    fn places_of<'b, 'i>(&'b self, id: &'i str) -> impl Iterator<Item = usize> + use<'b, 'i> {
        let index = self.by_id();
        let hash = id_hash(id);
        let first = index.partition_point(|&(h, _)| h < hash);
        index[first..]
            .iter()
            .take_while(move |&&(h, _)| h == hash)
            .map(|&(_, i)| i as usize)
            // Two IDs may share a hash: the ID itself decides.
            .filter(move |&i| self.tasks[i].id == id)
    }

    /// The place in `tasks` of the first task whose ID is `id` and usable.
    pub fn first_usable(&self, id: &str) -> Option<usize> {
        (self.places_of(id)).find(|&i| self.tasks[i].id_problem.is_none())
    }

    /// For each task, whether its ID is usable and no task before it carries the same one.
    /// Read from the index by ID, and kept with it while no ID changes: an ID's text is read
    /// only where two IDs share a hash.
    pub fn first_usable_ids(&self) -> &[bool] {
        self.ids
            .first_usable
            .get_or_init(|| self.find_first_usable())
    }

    fn find_first_usable(&self) -> Vec<bool> {
        let usable = |i: u32| Some(&self.tasks[i as usize]).filter(|t| t.id_problem.is_none());
        let mut first = vec![false; self.tasks.len()];
        // Tasks sharing a hash sit together in board order: each is first unless one before it
        // carries the same usable ID (most groups are of one task).
        for group in self.by_id().chunk_by(|a, b| a.0 == b.0) {
            for (n, &(_, i)) in group.iter().enumerate() {
                first[i as usize] = usable(i).is_some_and(|task| {
                    !(group[..n].iter())
                        .any(|&(_, j)| usable(j).is_some_and(|other| other.id == task.id))
                });
            }
        }
        first
    }

    /// Names the tasks' IDs, in order, as a whole: two boards of one process with the same
    /// generation hold tasks with the same IDs in the same places (a re-parse that changed no
    /// ID or place keeps it; every other parse takes a new one). Different generations say
    /// nothing: the IDs may be the same. What depends on the IDs alone may be kept from the
    /// board it was worked out on while the generation stays.
    pub fn ids_generation(&self) -> u64 {
        self.ids.generation
    }

    /// Whether lookups by ID are ready to use: a step before made the index. One lookup costs
    /// more than a walk of the tasks until it is made.
    pub fn ids_indexed(&self) -> bool {
        self.ids.index.get().is_some()
    }

    /// The index behind lookups by ID, made on first use.
    fn by_id(&self) -> &[(u64, u32)] {
        self.ids.index.get_or_init(|| {
            // From the glances, 16 bytes a task in a row, rather than from the tasks.
            let mut index: Vec<(u64, u32)> = (self.glances.iter().enumerate())
                .map(|(i, g)| (g.id_hash, i as u32))
                .collect();
            index.sort_unstable();
            index
        })
    }

    /// 1-based line and column (in characters) of a byte offset.
    pub fn line_col(&self, text: &str, offset: usize) -> (usize, usize) {
        let line = self.line_starts.partition_point(|&s| s <= offset).max(1);
        let start = self.line_starts[line - 1];
        let offset = offset.min(text.len());
        let column = text
            .get(start..offset)
            .map_or(offset - start, |s| s.chars().count())
            + 1;
        (line, column)
    }
}

/// A copy of `range` of a board's text, which the [`Text`]s of a parse share.
struct SharedCopy {
    copy: Arc<str>,
    at: usize,
}

impl SharedCopy {
    fn new(text: &str, range: Range<usize>) -> SharedCopy {
        SharedCopy {
            at: range.start,
            copy: Arc::from(&text[range]),
        }
    }

    /// `part`, a slice of `text` (the text this is a copy of a range of), as a [`Text`].
    fn text(&self, text: &str, part: &str) -> Text {
        let start = part.as_ptr() as usize - text.as_ptr() as usize;
        self.range(start..start + part.len())
    }

    /// `range` of the text this is a copy of a range of, as a [`Text`].
    fn range(&self, range: Range<usize>) -> Text {
        Text::new(&self.copy, range.start - self.at..range.end - self.at)
    }
}

/// Where the Markdown of a board's text starts: past a byte-order mark, if it has one.
fn markdown_start(text: &str) -> usize {
    if text.starts_with('\u{FEFF}') { 3 } else { 0 }
}

/// The task whose heading is top-level block `i`, if that block is one.
fn task_at(
    text: &str,
    source: &SharedCopy,
    blocks: &[Block],
    items: &[usize],
    i: usize,
) -> Option<Task> {
    let block = &blocks[i];
    let BlockKind::Heading { level, atx: true } = block.kind else {
        return None;
    };
    let heading = block.range.clone();
    let content = heading_content(text, &heading);
    let fields: Vec<FieldRanges> = match blocks.get(i + 1) {
        Some(Block {
            kind: BlockKind::BulletList,
            items: own,
            ..
        }) => items[own.clone()]
            .iter()
            .filter_map(|&start| {
                let (key, value, quoted) = field_at(text.as_bytes(), start)?;
                Some(FieldRanges { key, value, quoted })
            })
            .collect(),
        _ => Vec::new(),
    };
    let status_field = fields
        .iter()
        .find(|f| text[f.key.clone()].eq_ignore_ascii_case("status"));
    let (id, id_problem, title) = match split_id(&text[content.clone()]) {
        Some((id, title)) => (id, None, title),
        None => {
            // Only a heading that claims to be a task (it has a status) is one.
            status_field?;
            let (word, title) = first_word(&text[content]);
            let problem = if is_unsafe_component(word) {
                IdProblem::Unsafe
            } else {
                IdProblem::Malformed
            };
            (word, Some(problem), title)
        }
    };
    let status = status_field.map(|f| StatusField {
        raw: source.range(f.value.clone()),
        range: f.value.clone(),
        parsed: Status::parse(&text[f.value.clone()]),
    });
    let fields_end = fields.last().map_or(heading.end, |f| f.value.end);
    Some(Task {
        id_hash: id_hash(id),
        keys: KeysSeen::of(text, &fields),
        id: source.text(text, id),
        id_problem,
        title: source.text(text, title),
        level,
        heading: heading.clone(),
        block: heading.start..block_end(text, blocks, i, level),
        fields,
        text: source.range(heading.start..fields_end),
        status,
    })
}

/// Where the block of a heading of `level` at block `i` ends: at the next heading of the same
/// or a higher level, or at the end of the text.
fn block_end(text: &str, blocks: &[Block], i: usize, level: u8) -> usize {
    blocks[i + 1..]
        .iter()
        .find_map(|b| match b.kind {
            BlockKind::Heading { level: l, .. } if l <= level => Some(b.range.start),
            _ => None,
        })
        .unwrap_or(text.len())
}

/// The texts between `old_text` and `new_text` that [`Board::reparse_edits`] steps through:
/// the groups of nearby edits applied one at a time, the last group first, so that each text
/// differs from the one before at one group only. The last step, to `new_text`, is not in the
/// list. Empty when the edits are one group, or do not fit the texts.
fn edit_steps(old_text: &str, new_text: &str, edits: &[Edit]) -> Vec<String> {
    // Edits closer than this are re-parsed together: parsing the gap costs less than the copy
    // and the comparisons of the text that another step makes.
    let near = old_text.len() / 64;
    // (start in the old text, end in the old text, shift of the new text before the group)
    let mut groups: Vec<(usize, usize, isize)> = Vec::new();
    let mut shift = 0isize;
    for e in edits {
        match groups.last_mut() {
            Some((_, end, _)) if e.replaced.start <= *end + near => *end = e.replaced.end,
            _ => groups.push((e.replaced.start, e.replaced.end, shift)),
        }
        shift += e.len as isize - e.replaced.len() as isize;
    }
    let mut steps = Vec::new();
    for &(start, _, shift) in groups.iter().skip(1).rev() {
        // The old text before this group, the new one from it on.
        let from = start as isize + shift;
        let head = old_text.get(..start);
        let tail = usize::try_from(from).ok().and_then(|f| new_text.get(f..));
        let (Some(head), Some(tail)) = (head, tail) else {
            return Vec::new();
        };
        steps.push(format!("{head}{tail}"));
    }
    steps
}

/// The lengths of the longest common prefix and suffix of `a` and `b`, not overlapping in
/// either.
fn common_ends(a: &[u8], b: &[u8]) -> (usize, usize) {
    // Whole chunks first (compared as slices, so with `memcmp`), then byte by byte.
    const CHUNK: usize = 256;
    let shorter = a.len().min(b.len());
    let same = a
        .chunks_exact(CHUNK)
        .zip(b.chunks_exact(CHUNK))
        .take_while(|(x, y)| x == y)
        .count()
        * CHUNK;
    let prefix = same
        + a[same..]
            .iter()
            .zip(&b[same..])
            .position(|(x, y)| x != y)
            .unwrap_or(shorter - same);
    let (a, b) = (&a[prefix..], &b[prefix..]);
    let same = a
        .rchunks_exact(CHUNK)
        .zip(b.rchunks_exact(CHUNK))
        .take_while(|(x, y)| x == y)
        .count()
        * CHUNK;
    let suffix = same
        + a[..a.len() - same]
            .iter()
            .rev()
            .zip(b[..b.len() - same].iter().rev())
            .position(|(x, y)| x != y)
            .unwrap_or(shorter - prefix - same);
    (prefix, suffix)
}

/// Line starts after replacing `changed` of the old text (whose line starts these are): those
/// up to its start stay, those inside it are found again in `text`, those after it move.
fn splice_line_starts(starts: &mut Vec<usize>, text: &str, changed: Range<usize>, delta: isize) {
    // A line start `x` follows a newline at `x - 1`.
    let keep = starts.partition_point(|&x| x <= changed.start);
    let rest = starts.partition_point(|&x| x <= changed.end);
    let new_end = moved(changed.end, delta);
    let found: Vec<usize> = text.as_bytes()[changed.start..new_end]
        .iter()
        .enumerate()
        .filter(|&(_, &c)| c == b'\n')
        .map(|(i, _)| changed.start + i + 1)
        .collect();
    let found_len = found.len();
    starts.splice(keep..rest, found);
    for x in &mut starts[keep + found_len..] {
        *x = moved(*x, delta);
    }
}

fn moved(x: usize, delta: isize) -> usize {
    x.wrapping_add_signed(delta)
}

fn shift_by(r: &Range<usize>, delta: isize) -> Range<usize> {
    moved(r.start, delta)..moved(r.end, delta)
}

fn shift(r: &Range<usize>, by: usize) -> Range<usize> {
    r.start + by..r.end + by
}

/// Calls `f` with the offset of every `\n` in `bytes`, in order. A board's lines are short
/// (about 20 bytes), so a `memchr` call per line costs more than this look at 8 bytes at a time
/// (a word's `\n` bytes found with carry-free arithmetic, so no byte disturbs another).
fn for_each_newline(bytes: &[u8], mut f: impl FnMut(usize)) {
    const LOW7: u64 = 0x7f7f_7f7f_7f7f_7f7f;
    const NEWLINES: u64 = 0x0a0a_0a0a_0a0a_0a0a;
    let mut words = bytes.chunks_exact(8);
    let mut base = 0;
    for word in &mut words {
        let mut w = [0u8; 8];
        w.copy_from_slice(word);
        // A byte of `x` is zero exactly where the byte is `\n`; its high bit in `hits` is set
        // exactly then.
        let x = u64::from_le_bytes(w) ^ NEWLINES;
        let mut hits = !(((x & LOW7) + LOW7) | x | LOW7);
        while hits != 0 {
            f(base + hits.trailing_zeros() as usize / 8);
            hits &= hits - 1;
        }
        base += 8;
    }
    for (i, &b) in words.remainder().iter().enumerate() {
        if b == b'\n' {
            f(base + i);
        }
    }
}

/// What the board reads from pulldown-cmark for a text: its top-level blocks (kind and range)
/// and where its bullet lists' own items start.
#[derive(Debug, PartialEq)]
pub struct Outline {
    blocks: Vec<Block>,
    items: Vec<usize>,
}

/// How [`outline`] hands a text to pulldown-cmark.
#[derive(Debug, Clone, Copy)]
pub enum Inline {
    /// As a parse does: emphasis delimiters and backticks no block rule reads turned into letters.
    Masked,
    /// The text as written.
    AsWritten,
}

/// The [`Outline`] of `text`. The two ways give the same outline for every text: a parse masks,
/// and the property tests and the `parse` fuzz target hold it to the outline as written.
pub fn outline(text: &str, inline: Inline) -> Outline {
    let (blocks, items) = match inline {
        Inline::Masked => top_level_blocks(text, 0),
        Inline::AsWritten => blocks_of(text, text, 0),
    };
    Outline { blocks, items }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum BlockKind {
    Heading { level: u8, atx: bool },
    BulletList,
    Other,
}

#[derive(Debug, Clone, PartialEq)]
struct Block {
    kind: BlockKind,
    range: Range<usize>,
    /// For a bullet list: its own items (not nested ones), as indices of [`Board`]'s `items`
    /// (an empty range at the right place for any other block).
    items: Range<usize>,
}

fn heading_level(level: HeadingLevel) -> u8 {
    match level {
        HeadingLevel::H1 => 1,
        HeadingLevel::H2 => 2,
        HeadingLevel::H3 => 3,
        HeadingLevel::H4 => 4,
        HeadingLevel::H5 => 5,
        HeadingLevel::H6 => 6,
    }
}

/// The blocks at the top level of the document, in order. Anything nested (in a quote, a list,
/// an HTML block, a code block or a table) is inside one of these and never a task.
/// Ranges are shifted by `base`, the offset of `md` in the text. Also gives where the bullet
/// lists' own items start.
fn top_level_blocks(md: &str, base: usize) -> (Vec<Block>, Vec<usize>) {
    blocks_of(md, &inline::masked(md), base)
}

/// The blocks of `md` as pulldown-cmark reads them in `parsed`: `md` itself, or `md` with its
/// inline syntax masked (the same blocks, `inline`'s doc says why).
fn blocks_of(md: &str, parsed: &str, base: usize) -> (Vec<Block>, Vec<usize>) {
    let mut blocks: Vec<Block> = Vec::new();
    let mut items: Vec<usize> = Vec::new();
    let mut depth = 0usize;
    let parser = Parser::new_ext(parsed, Options::ENABLE_TABLES).into_offset_iter();
    for (event, range) in parser {
        match event {
            Event::Start(tag) => {
                if depth == 0 {
                    let kind = match &tag {
                        Tag::Heading { level, .. } => BlockKind::Heading {
                            level: heading_level(*level),
                            atx: md[range.clone()].trim_start().starts_with('#'),
                        },
                        Tag::List(None) => BlockKind::BulletList,
                        _ => BlockKind::Other,
                    };
                    blocks.push(Block {
                        kind,
                        range: shift(&range, base),
                        items: items.len()..items.len(),
                    });
                } else if depth == 1
                    && matches!(tag, Tag::Item)
                    && let Some(last) = blocks.last_mut()
                    && last.kind == BlockKind::BulletList
                {
                    items.push(range.start + base);
                    last.items.end = items.len();
                }
                depth += 1;
            }
            Event::End(_) => depth = depth.saturating_sub(1),
            // Leaf events at the top level (a rule, raw HTML outside a block) separate blocks.
            _ if depth == 0 => blocks.push(Block {
                kind: BlockKind::Other,
                range: shift(&range, base),
                items: items.len()..items.len(),
            }),
            _ => {}
        }
    }
    (blocks, items)
}

/// The heading's text: the line without its `#` run, closing `#` sequence and line ending.
fn heading_content(text: &str, heading: &Range<usize>) -> Range<usize> {
    let line = &text[heading.clone()];
    let line_end = line.find(['\r', '\n']).unwrap_or(line.len());
    let lead = line.len() - line.trim_start_matches(is_blank).len();
    let after_hashes = lead + line[lead..].len() - line[lead..].trim_start_matches('#').len();
    let mut start = after_hashes;
    while start < line_end && matches!(line.as_bytes()[start], b' ' | b'\t') {
        start += 1;
    }
    let mut end = line_end.max(start);
    let trimmed = line[start..end].trim_end_matches(is_blank);
    end = start + trimmed.len();
    // A closing sequence is a run of `#` preceded by a space (or the whole content).
    let without_hashes = trimmed.trim_end_matches('#');
    if without_hashes.len() < trimmed.len()
        && (without_hashes.is_empty() || without_hashes.ends_with([' ', '\t']))
    {
        end = start + without_hashes.trim_end_matches(is_blank).len();
    }
    heading.start + start..heading.start + end
}

/// Splits `ID[:|-|–|—] title` into the ID and the title, when the content starts with a task ID.
fn split_id(s: &str) -> Option<(&str, &str)> {
    let id_len = id_prefix_len(s)?;
    let rest = s[id_len..].trim_start_matches(is_blank);
    let rest = rest
        .strip_prefix(':')
        .or_else(|| rest.strip_prefix('-'))
        .or_else(|| rest.strip_prefix('–'))
        .or_else(|| rest.strip_prefix('—'))
        .unwrap_or(rest);
    Some((&s[..id_len], rest.trim()))
}

/// The length of the task ID at the start of `s`, if it starts with one that ends at a boundary
/// (end, whitespace, `:` or a dash).
fn id_prefix_len(s: &str) -> Option<usize> {
    let bytes = s.as_bytes();
    let mut i = 0;
    if !bytes.first()?.is_ascii_alphabetic() {
        return None;
    }
    while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_') {
        i += 1;
    }
    if bytes.get(i) != Some(&b'-') {
        return None;
    }
    i += 1;
    let digits = i;
    while i < bytes.len() && bytes[i].is_ascii_digit() {
        i += 1;
    }
    if i == digits {
        return None;
    }
    let boundary = match s[i..].chars().next() {
        None => true,
        Some(c) => c.is_whitespace() || matches!(c, ':' | '-' | '–' | '—'),
    };
    // The scan above is the task ID grammar, so `is_task_id` need not read the ID again.
    debug_assert!(!boundary || is_task_id(&s[..i]));
    boundary.then_some(i)
}

/// For a heading that claims a status but has no valid ID: its first word as the claimed ID.
fn first_word(s: &str) -> (&str, &str) {
    let end = s
        .find(|c: char| c.is_whitespace() || c == ':')
        .unwrap_or(s.len());
    let rest = s[end..].trim_start_matches([' ', '\t', ':']);
    (&s[..end], rest.trim())
}

/// Would this string be dangerous as a single path component?
pub fn is_unsafe_component(s: &str) -> bool {
    s.is_empty()
        || s == "."
        || s == ".."
        || s.starts_with('.')
        || s.contains(['/', '\\'])
        || s.contains("..")
        || s.chars().any(|c| c.is_control())
}

/// A space or a tab. As a `fn(char)` pattern it trims faster than the array `[' ', '\t']`.
fn is_blank(c: char) -> bool {
    c == ' ' || c == '\t'
}

/// Where the key and the value of a `key: value` field lie, the first line of a list item
/// starting at `item_start`, and whether the value is wrapped in backticks (the value's range
/// is without them). One pass over the bytes, as the line is short and a board has thousands
/// of them; every byte it looks for is ASCII, so a range never splits a character.
///
/// The forms: `- **key**: v`, `- __key__: v`, `- **key:** v` or `- key: v`, with `*` or `+`
/// as the marker too. A key starts with a letter and holds letters, digits, `_`, `-` and
/// spaces (trailing ones are not part of it, and may not come before the colon).
fn field_at(bytes: &[u8], item_start: usize) -> Option<(Range<usize>, Range<usize>, bool)> {
    let blanks = |mut i: usize| {
        while i < bytes.len() && matches!(bytes[i], b' ' | b'\t') {
            i += 1;
        }
        i
    };
    let mut i = blanks(item_start);
    if !matches!(bytes.get(i), Some(b'-' | b'*' | b'+')) {
        return None;
    }
    i = blanks(i + 1);
    let bold = match bytes.get(i..i + 2) {
        Some(m @ (b"**" | b"__")) => {
            i += 2;
            Some(m)
        }
        _ => None,
    };
    let key_at = i;
    if !bytes.get(i).is_some_and(u8::is_ascii_alphabetic) {
        return None;
    }
    while i < bytes.len()
        && (bytes[i].is_ascii_alphanumeric() || matches!(bytes[i], b'_' | b'-' | b' '))
    {
        // `_` is a key character, so a `__key__` key ends where its closing `__` starts.
        if bold == Some(b"__") && bytes[i] == b'_' && bytes.get(i + 1) == Some(&b'_') {
            break;
        }
        i += 1;
    }
    let mut key_end = i;
    while key_end > key_at && bytes[key_end - 1] == b' ' {
        key_end -= 1;
    }
    i = key_end;
    let is = |i: usize, m: &[u8]| bytes.get(i..i + m.len()) == Some(m);
    match bold {
        Some(m) if is(i, m) && is(i + 2, b":") => i += 3,
        Some(m) if is(i, b":") && is(i + 1, m) => i += 3,
        Some(_) => return None,
        None if is(i, b":") => i += 1,
        None => return None,
    }
    let mut start = blanks(i);
    let mut end = start;
    while end < bytes.len() && !matches!(bytes[end], b'\r' | b'\n') {
        end += 1;
    }
    while end > start && matches!(bytes[end - 1], b' ' | b'\t') {
        end -= 1;
    }
    let quoted = end - start >= 2
        && bytes[start] == b'`'
        && bytes[end - 1] == b'`'
        && !bytes[start + 1..end - 1].contains(&b'`');
    if quoted {
        start += 1;
        end -= 1;
    }
    Some((key_at..key_end, start..end, quoted))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(text: &str) -> Vec<String> {
        Board::parse(text)
            .tasks
            .into_iter()
            .map(|t| t.id.to_string())
            .collect()
    }

    #[test]
    fn tasks_fields_and_status_ranges() {
        let text = "# Board\n\n## Backlog\n\n### TASK-015: Write the brief\n\n- status: `ready`\n- **Route**: review\n- owner: siyao\n\nSome description.\n\n### T-0147 — Second\n- **status:** blocked:task:TASK-015\n";
        let b = Board::parse(text);
        assert_eq!(b.tasks.len(), 2);
        let t = &b.tasks[0];
        assert_eq!(
            (t.id.as_str(), t.title.as_str(), t.level),
            ("TASK-015", "Write the brief", 3)
        );
        let st = t.status.as_ref().unwrap();
        assert_eq!(&text[st.range.clone()], "ready");
        assert_eq!(st.parsed, Ok(Status::Ready));
        assert_eq!(t.route(), Some("review"));
        assert_eq!(t.field("OWNER").unwrap().value, "siyao");
        assert!(text[t.block.clone()].ends_with("Some description.\n\n"));
        let t2 = &b.tasks[1];
        assert_eq!(t2.title, "Second");
        assert_eq!(
            t2.status(),
            Some(&Status::BlockedOnTasks(vec!["TASK-015".into()]))
        );
        assert_eq!(t2.block.end, text.len());
    }

    #[test]
    fn things_that_are_not_tasks() {
        let text = "```\n## A-1: fenced\n- status: ready\n```\n\n<!--\n## B-1: comment\n- status: ready\n-->\n\nC-1: setext\n----\n- status: ready\n\n> ## D-1: quoted\n> - status: ready\n\n| ## E-1 | x |\n|---|---|\n\n- ## F-1: in a list\n\n    ## G-1: indented code\n\n## Backlog\n- status: nope\n";
        let b = Board::parse(text);
        // `## Backlog` has a status field, so it is reported as a task with a malformed ID.
        assert_eq!(ids(text), vec!["Backlog".to_string()]);
        assert_eq!(b.tasks[0].id_problem, Some(IdProblem::Malformed));
    }

    #[test]
    fn id_boundaries_and_unsafe_ids() {
        assert_eq!(
            ids("## A-1\n## B-2:x\n## C-3 - y\n## D-4abc\n## E-5/x\n"),
            ["A-1", "B-2", "C-3"]
        );
        let b = Board::parse("## ../../etc: pwn\n- status: ready\n");
        assert_eq!(b.tasks[0].id, "../../etc");
        assert_eq!(b.tasks[0].id_problem, Some(IdProblem::Unsafe));
        assert_eq!(b.tasks[0].title, "pwn");
    }

    #[test]
    fn duplicated_ids_are_the_usable_ids_carried_twice() {
        let b = Board::parse(
            "## A-1\n- status: ready\n## B-1\n## A-1: again\n- status: done\n## Fix\n- status: ready\n## Fix\n- status: ready\n",
        );
        assert_eq!(b.duplicated_ids(), HashSet::from(["A-1"]));
        assert!(Board::parse("## A-1\n## B-1\n").duplicated_ids().is_empty());
    }

    #[test]
    fn a_lookup_by_id_finds_what_a_walk_through_the_board_finds() {
        let text = "## A-1\n- status: ready\n## B-1\n## A-1: again\n- status: done\n## Fix\n- status: ready\n## C-1\n";
        let b = Board::parse(text);
        let walk = |b: &Board, id: &str| -> Vec<usize> {
            (b.tasks.iter().enumerate())
                .filter(|(_, t)| t.id == id)
                .map(|(i, _)| i)
                .collect()
        };
        let looked_up = |b: &Board, id: &str| -> Vec<usize> {
            b.with_id(id)
                .map(|t| b.tasks.iter().position(|u| std::ptr::eq(t, u)).unwrap())
                .collect()
        };
        for id in ["A-1", "B-1", "Fix", "C-1", "D-1", "A-", ""] {
            assert_eq!(looked_up(&b, id), walk(&b, id), "{id}");
        }
        assert_eq!(b.task("A-1").unwrap().status(), Some(&Status::Ready));
        assert!(b.sole_task("A-1").is_none() && b.sole_task("D-1").is_none());
        assert_eq!(b.sole_task("B-1").map(|t| t.id.as_str()), Some("B-1"));
        // Three tasks share one ID, two share another, two headings share a word that is no ID.
        let many = format!("{text}## B-1\n## A-1\n## Fix\n");
        let b = Board::parse(&many);
        let mut seen = HashSet::new();
        let walked: HashSet<&str> = (b.tasks.iter())
            .filter(|t| t.id_problem.is_none())
            .filter(|t| !seen.insert(t.id.as_str()))
            .map(|t| t.id.as_str())
            .collect();
        assert_eq!(b.duplicated_ids(), walked);
        assert_eq!(walked, HashSet::from(["A-1", "B-1"]));
        // The first task of each usable ID, and where each ID's first usable task is, as a walk
        // through the board finds them.
        let mut seen = HashSet::new();
        let firsts: Vec<bool> = (b.tasks.iter())
            .map(|t| t.id_problem.is_none() && seen.insert(t.id.as_str()))
            .collect();
        assert_eq!(b.first_usable_ids(), firsts.as_slice());
        assert!(firsts.iter().any(|f| !f) && firsts.iter().filter(|&&f| f).count() > 2);
        for id in ["A-1", "B-1", "Fix", "C-1", "D-1", "X-9"] {
            let walked = (b.tasks.iter()).position(|t| t.id_problem.is_none() && t.id == id);
            assert_eq!(b.first_usable(id), walked, "{id}");
        }
        let b = Board::parse(text);
        // A re-parse renames a task: the lookup follows the new board, not the old one's index.
        let edited = text.replace("## C-1", "## D-1");
        let b = b.reparse(text, &edited);
        assert!(b.task("C-1").is_none());
        assert_eq!(looked_up(&b, "D-1"), walk(&b, "D-1"));
        assert_eq!(b.with_id("D-1").count(), 1);
        // A re-parse that makes a second B-1 where C-1 was: the first occurrences, kept with
        // the index while no ID changes, are those of the new board.
        let twice = text.replace("## C-1", "## B-1");
        let b = Board::parse(text);
        assert_eq!(b.first_usable_ids().iter().filter(|&&f| f).count(), 3);
        let b = b.reparse(text, &twice);
        assert_eq!(
            b.first_usable_ids(),
            Board::parse(&twice).first_usable_ids()
        );
        assert_eq!(b.first_usable("B-1"), Some(1));
    }

    #[test]
    fn fields_only_from_a_list_directly_under_the_heading() {
        let b = Board::parse("## A-1\nIntro.\n\n- status: ready\n");
        assert!(b.tasks[0].status.is_none());
        let b = Board::parse("## A-1\n\n\n* status: done\n  - status: ready\n");
        assert_eq!(b.tasks[0].status(), Some(&Status::Done));
    }

    #[test]
    fn block_runs_to_next_heading_of_same_or_higher_level() {
        let text = "## A-1\n- status: ready\n### Notes\ntext\n## B-1\n- status: done\n";
        let b = Board::parse(text);
        assert_eq!(
            &text[b.tasks[0].block.clone()],
            "## A-1\n- status: ready\n### Notes\ntext\n"
        );
    }

    #[test]
    fn bom_crlf_and_closing_hashes() {
        let text = "\u{FEFF}## A-1: Título 🚀 ##\r\n- status: done\r\n";
        let b = Board::parse(text);
        let t = &b.tasks[0];
        assert_eq!(t.title, "Título 🚀");
        assert_eq!(&text[t.status.as_ref().unwrap().range.clone()], "done");
        assert_eq!(
            b.line_col(text, t.status.as_ref().unwrap().range.start),
            (2, 11)
        );
    }

    /// The field scan as first written, with `str` methods: [`field_at`] must agree with it.
    /// A `key: value` field from the first line of a list item starting at `item_start`.
    fn field_at_simple(
        text: &str,
        item_start: usize,
    ) -> Option<(Range<usize>, Range<usize>, bool)> {
        let rest = &text[item_start..];
        // Byte searches: every byte they look for is ASCII, so they find what a `char` search would.
        let line_len = rest
            .bytes()
            .position(|b| matches!(b, b'\r' | b'\n'))
            .unwrap_or(rest.len());
        let line = &rest[..line_len];
        let lead = line.len() - line.trim_start_matches(is_blank).len();
        let after_marker = line[lead..].strip_prefix(['-', '*', '+'])?;
        let body = after_marker.trim_start_matches(is_blank);
        let body_at = item_start + line.len() - body.len();

        // `**key**: v`, `__key__: v`, `**key:** v` or `key: v`.
        let (bold, inner) = match body.get(..2) {
            Some(m @ ("**" | "__")) => (Some(m), &body[2..]),
            _ => (None, body),
        };
        let key_at = body_at + if bold.is_some() { 2 } else { 0 };
        let mut key_len = inner
            .bytes()
            .position(|b| !(b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b' ')))
            .unwrap_or(inner.len());
        // `_` is a key character, so a `__key__` key ends where its closing `__` starts.
        if let Some(close) = bold.and_then(|m| inner[..key_len].find(m)) {
            key_len = close;
        }
        let key = inner[..key_len].trim_end();
        if key.is_empty() || !key.starts_with(|c: char| c.is_ascii_alphabetic()) {
            return None;
        }
        let mut after = &inner[key.len()..];
        match bold {
            Some(m) => {
                if let Some(a) = after.strip_prefix(m).and_then(|a| a.strip_prefix(':')) {
                    after = a;
                } else if let Some(a) = after.strip_prefix(':').and_then(|a| a.strip_prefix(m)) {
                    after = a;
                } else {
                    return None;
                }
            }
            None => after = after.strip_prefix(':')?,
        }
        let value_str = after.trim_matches(is_blank);
        let mut value_at = item_start + line.len() - after.len()
            + (after.len() - after.trim_start_matches(is_blank).len());
        let mut value = value_str;
        let mut quoted = false;
        if value.len() >= 2
            && value.starts_with('`')
            && value.ends_with('`')
            && !value[1..value.len() - 1].contains('`')
        {
            value = &value[1..value.len() - 1];
            value_at += 1;
            quoted = true;
        }
        Some((
            key_at..key_at + key.len(),
            value_at..value_at + value.len(),
            quoted,
        ))
    }

    proptest::proptest! {
        /// The one-pass field scan finds what the `str`-method scan finds, on lines built from
        /// the characters that matter to it.
        #[test]
        fn field_at_agrees_with_the_simple_scan(
            text in "[ \t]{0,2}[-*+x]?[ \t]{0,2}(\\*\\*|__|\\*|_)?[a-zA-Z0-9_ é-]{0,6}(\\*\\*|__|_)?[: ]{0,2}(\\*\\*|__)?:?[ \t]{0,2}`?[a-z` \té:*_]{0,8}`?[ \t]{0,2}[\r\n]?[a-z`\n ]{0,4}",
        ) {
            proptest::prop_assert_eq!(field_at(text.as_bytes(), 0), field_at_simple(&text, 0));
        }

        /// What the parse notes of a task's keys is what a walk through its fields finds,
        /// for keys in any case, bold or not, repeated or not.
        #[test]
        fn the_keys_noted_are_the_keys_of_the_fields(
            keys in proptest::collection::vec(
                (
                    proptest::bool::ANY,
                    "touches|Touches|TOUCHES|base_branch|Base_Branch|status|route|x",
                ),
                0..5,
            ),
        ) {
            let mut text = String::from("## T-1: one\n");
            for (bold, key) in &keys {
                let key = if *bold { format!("**{key}**") } else { key.clone() };
                text.push_str(&format!("- {key}: v\n"));
            }
            let board = Board::parse(&text);
            let task = &board.tasks[0];
            let found: Vec<String> = task.fields().map(|f| f.key.to_ascii_lowercase()).collect();
            let has = |name: &str| found.iter().any(|k| k == name);
            let mut sorted = found.clone();
            sorted.sort();
            sorted.dedup();
            proptest::prop_assert_eq!(task.declares_touches(), has("touches"));
            proptest::prop_assert_eq!(task.keys.base_branch, has("base_branch"));
            proptest::prop_assert_eq!(task.keys.repeated, sorted.len() < found.len());
            proptest::prop_assert_eq!(found.len(), keys.len());
        }

        /// Every `\n`, in order, whatever the length and where the 16-byte blocks fall.
        #[test]
        fn for_each_newline_finds_every_newline(text in "[a\n\ré]{0,80}") {
            let mut found = Vec::new();
            for_each_newline(text.as_bytes(), |i| found.push(i));
            let want: Vec<usize> = text.match_indices('\n').map(|(i, _)| i).collect();
            proptest::prop_assert_eq!(found, want);
        }
    }

    #[test]
    fn edits_far_apart_are_reparsed_one_at_a_time() {
        use crate::core::writeback::{Change, apply};
        let old: String = (1..=300)
            .map(|i| format!("## T-{i}: task {i}\n- status: ready\n\nWhat it is about.\n\n"))
            .collect();
        let board = Board::parse(&old);
        let _ = board.duplicated_ids();
        let changes: Vec<Change> = ["T-290", "T-10", "T-150", "T-151"]
            .iter()
            .map(|id| Change {
                id: id.to_string(),
                expected: Status::Ready,
                new: Status::parse("failed:no").unwrap(),
            })
            .collect();
        let out = apply(&old, &board, &changes);
        assert_eq!(out.edits.len(), 4);
        // T-150 and T-151 are near: one group. Each step changes one group's bytes only.
        let steps = edit_steps(&old, &out.text, &out.edits);
        assert_eq!(steps.len(), 2);
        let mut texts = vec![old.as_str()];
        texts.extend(steps.iter().map(String::as_str));
        texts.push(&out.text);
        let group_len = |a: &str, b: &str| {
            let (prefix, suffix) = common_ends(a.as_bytes(), b.as_bytes());
            a.len().max(b.len()) - prefix - suffix
        };
        let changed: Vec<usize> = texts.windows(2).map(|w| group_len(w[0], w[1])).collect();
        // Last to first: T-290, then T-150 and T-151 (two tasks apart by one block), then T-10.
        let one_task = old.len() / 300;
        let bounds = [one_task, 2 * one_task, one_task];
        assert!(
            changed
                .iter()
                .zip(bounds)
                .all(|(&n, most)| n > 0 && n < most),
            "{changed:?}"
        );
        let reparsed = board.reparse_edits(&old, &out.text, &out.edits);
        assert!(
            reparsed.ids_indexed(),
            "the index outlives a write of statuses"
        );
        assert_eq!(reparsed, Board::parse(&out.text));
        // Edits that do not fit the texts choose nothing: still the full parse's board.
        let wrong = [
            Edit {
                replaced: 5..old.len() + 9,
                len: 1,
            },
            Edit {
                replaced: old.len() + 20..old.len() + 30,
                len: 2,
            },
        ];
        assert!(edit_steps(&old, &out.text, &wrong).is_empty());
        assert_eq!(
            Board::parse(&old).reparse_edits(&old, &out.text, &wrong),
            Board::parse(&out.text)
        );
    }

    #[test]
    fn an_edit_inside_one_task_reparses_only_its_span() {
        let old = "# Board\n\n## A-1: one\n- status: ready\n\ntext\n\n## B-2\n- status: done\n\n## C-3\n- status: ready\n";
        let new = old.replace("- status: done", "- status: failed:no\n- route: r");
        let fast = Board::parse(old).splice_edit(old, &new);
        assert_eq!(fast, Ok(Board::parse(&new)));
        // An edit that opens a fence swallows the next heading: the whole text is parsed again.
        let new = old.replace("text\n", "```\n");
        assert_eq!(Board::parse(old).splice_edit(old, &new), Err(()));
        assert_eq!(Board::parse(old).reparse(old, &new), Board::parse(&new));
        // The first and the last tasks, and a BOM that comes or goes.
        for new in [
            old.replace("# Board", "# Board!"),
            old.replace("- status: ready\n", "- status: done\n"),
            format!("\u{FEFF}{old}"),
            format!("{old}## D-4\n"),
        ] {
            assert_eq!(Board::parse(old).reparse(old, &new), Board::parse(&new));
        }
        // A heading at the very end, without a line ending, that the edit turns into text.
        for (old, new) in [
            ("2 \r#", "2 \r#1\t:tabs  \t\n3332##bs  \t\n"),
            // A lone `\r` ends a line, but a fence's info string runs on to the next `\n`: here
            // it held a backtick before the edit, so the opening line was no fence.
            (
                "```a\r# A-1\r- status: ready\r```",
                "```a\r# A-1\r- status: ready\rx\n```",
            ),
            (
                "## A-1\n- status: ready\n#",
                "## A-1\n- status: ready\n#B-1: x",
            ),
        ] {
            assert_eq!(Board::parse(old).reparse(old, new), Board::parse(new));
        }
    }

    #[test]
    fn the_ids_generation_stays_only_while_every_task_keeps_its_id_and_place() {
        let text = "# B\n\n## A-1 One\n- status: ready\n\n## B-2 Two\n- status: ready\n";
        let board = Board::parse(text);
        let generation = board.ids_generation();
        assert_eq!(board.clone().ids_generation(), generation);
        assert_ne!(Board::parse(text).ids_generation(), generation);
        let statuses = text.replacen("ready", "done", 1);
        let board = board.reparse(text, &statuses);
        assert_eq!(board.ids_generation(), generation, "a status changed");
        let board = board.reparse(&statuses, &statuses.replace("Two", "Two, renamed"));
        assert_eq!(board.ids_generation(), generation, "a title changed");
        for other in [
            statuses.replace("## B-2", "## B-3"),
            statuses.replace("## B-2", "## A-1"),
            format!("{statuses}\n## C-3 Three\n"),
            statuses.replace("\n## B-2 Two\n- status: ready\n", ""),
            "# B\n\n## B-2 Two\n- status: ready\n\n## A-1 One\n- status: done\n".to_string(),
        ] {
            let before = Board::parse(&statuses);
            let generation = before.ids_generation();
            let after = before.reparse(&statuses, &other);
            assert_ne!(after.ids_generation(), generation, "{other:?}");
            assert_eq!(after, Board::parse(&other));
        }
    }
}
