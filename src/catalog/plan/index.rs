//! The planner's copy of the catalog, indexed by name.
//!
//! The planner looks every spec role and database up in the snapshot and
//! simulates each statement on it; with a list scanned per name, a plan was
//! quadratic in the number of roles (a no-op re-apply of 100k roles cost
//! seconds of CPU). Here each lookup is one hash probe, and a row is copied
//! only when a statement changes it: the rows nothing touches stay borrowed
//! from the snapshot, so a plan of a large catalog does not double it in
//! memory.
//!
//! Rows keep the snapshot's order (new ones at the end, removed ones leave
//! a hole), so a pass that walks them sees them in the order the list-based
//! planner did, and emits the same statements in the same order.

use crate::catalog::model::{Catalog, DatabaseInfo, RoleInfo};
use std::borrow::Cow;
use std::collections::{BTreeSet, HashMap};

/// A catalog object known by its name.
pub(super) trait Named {
    fn name(&self) -> &str;
    fn set_name(&mut self, name: &str);
}

impl Named for RoleInfo {
    fn name(&self) -> &str {
        &self.name
    }
    fn set_name(&mut self, name: &str) {
        self.name = name.to_string();
    }
}

impl Named for DatabaseInfo {
    fn name(&self) -> &str {
        &self.name
    }
    fn set_name(&mut self, name: &str) {
        self.name = name.to_string();
    }
}

/// A row as the snapshot has it, or the planner's changed copy.
enum Row<'a, T> {
    Base(&'a T),
    Own(Box<T>),
}

impl<T> Row<'_, T> {
    fn get(&self) -> &T {
        match self {
            Row::Base(t) => t,
            Row::Own(t) => t,
        }
    }
}

/// Rows in order, with an index from name to position. Names are unique
/// (postgres' catalogs make them so); a snapshot that repeats one is looked
/// up at its first row, as a scan would find it.
pub(super) struct Table<'a, T> {
    rows: Vec<Option<Row<'a, T>>>,
    index: HashMap<Cow<'a, str>, usize>,
}

impl<'a, T: Named + Clone> Table<'a, T> {
    fn of(rows: &'a [T]) -> Self {
        let mut index = HashMap::with_capacity(rows.len());
        for (i, row) in rows.iter().enumerate() {
            index.entry(Cow::Borrowed(row.name())).or_insert(i);
        }
        Self {
            rows: rows.iter().map(|r| Some(Row::Base(r))).collect(),
            index,
        }
    }

    fn slot(&self, name: &str) -> Option<usize> {
        self.index.get(name).copied()
    }

    /// The row named `name`.
    pub(super) fn get(&self, name: &str) -> Option<&T> {
        self.at(self.slot(name)?)
    }

    fn at(&self, slot: usize) -> Option<&T> {
        self.rows.get(slot)?.as_ref().map(Row::get)
    }

    /// The row named `name`, to change (copied from the snapshot first).
    pub(super) fn get_mut(&mut self, name: &str) -> Option<&mut T> {
        let slot = self.slot(name)?;
        self.at_mut(slot)
    }

    fn at_mut(&mut self, slot: usize) -> Option<&mut T> {
        let row = self.rows.get_mut(slot)?.as_mut()?;
        if let Row::Base(t) = row {
            *row = Row::Own(Box::new((*t).clone()));
        }
        match row {
            Row::Own(t) => Some(t),
            Row::Base(_) => None,
        }
    }

    /// Adds a row at the end (its name must not be taken).
    pub(super) fn push(&mut self, row: T) -> usize {
        let slot = self.rows.len();
        self.index.insert(Cow::Owned(row.name().to_string()), slot);
        self.rows.push(Some(Row::Own(Box::new(row))));
        slot
    }

    /// Removes the row named `name`; returns its position.
    pub(super) fn remove(&mut self, name: &str) -> Option<usize> {
        let slot = self.index.remove(name)?;
        self.rows[slot] = None;
        Some(slot)
    }

    /// Renames the row named `from` to `to` (which must not be taken).
    pub(super) fn rename(&mut self, from: &str, to: &str) -> Option<&mut T> {
        let slot = self.index.remove(from)?;
        self.index.insert(Cow::Owned(to.to_string()), slot);
        let row = self.at_mut(slot)?;
        row.set_name(to);
        Some(row)
    }

    /// The rows in order.
    pub(super) fn iter(&self) -> impl Iterator<Item = &T> {
        self.rows.iter().flatten().map(Row::get)
    }
}

/// The planner's catalog: roles and databases by name, and the databases
/// of each owner (so a role's rename or drop finds its databases without a
/// scan).
pub(super) struct Sim<'a> {
    pub(super) roles: Table<'a, RoleInfo>,
    pub(super) databases: Table<'a, DatabaseInfo>,
    owned: HashMap<String, BTreeSet<usize>>,
    /// See [`Catalog::template1_defaults`].
    pub(super) template1_defaults: bool,
}

impl<'a> Sim<'a> {
    pub(super) fn of(catalog: &'a Catalog) -> Self {
        let databases = Table::of(&catalog.databases);
        let mut owned: HashMap<String, BTreeSet<usize>> = HashMap::new();
        for (slot, row) in databases.rows.iter().enumerate() {
            if let Some(db) = row {
                owned
                    .entry(db.get().owner.clone())
                    .or_default()
                    .insert(slot);
            }
        }
        Self {
            roles: Table::of(&catalog.roles),
            databases,
            owned,
            template1_defaults: catalog.template1_defaults,
        }
    }

    /// The role named `name`.
    pub(super) fn role(&self, name: &str) -> Option<&RoleInfo> {
        self.roles.get(name)
    }

    /// The database named `name`.
    pub(super) fn database(&self, name: &str) -> Option<&DatabaseInfo> {
        self.databases.get(name)
    }

    /// Adds a database.
    pub(super) fn push_database(&mut self, db: DatabaseInfo) {
        let owner = db.owner.clone();
        let slot = self.databases.push(db);
        self.owned.entry(owner).or_default().insert(slot);
    }

    /// Removes the database named `name`.
    pub(super) fn remove_database(&mut self, name: &str) {
        let Some(owner) = self.database(name).map(|d| d.owner.clone()) else {
            return;
        };
        if let Some(slot) = self.databases.remove(name) {
            self.disown(&owner, slot);
        }
    }

    /// Gives the database named `name` to `owner`.
    pub(super) fn set_owner(&mut self, name: &str, owner: &str) {
        let Some(slot) = self.databases.slot(name) else {
            return;
        };
        self.reown_slot(slot, owner);
    }

    /// Gives every database of `from` to `to`.
    pub(super) fn reown_all(&mut self, from: &str, to: &str) {
        let slots: Vec<usize> = self
            .owned
            .get(from)
            .map(|s| s.iter().copied().collect())
            .unwrap_or_default();
        for slot in slots {
            self.reown_slot(slot, to);
        }
    }

    fn reown_slot(&mut self, slot: usize, owner: &str) {
        let Some(db) = self.databases.at_mut(slot) else {
            return;
        };
        let old = std::mem::replace(&mut db.owner, owner.to_string());
        self.disown(&old, slot);
        self.owned
            .entry(owner.to_string())
            .or_default()
            .insert(slot);
    }

    fn disown(&mut self, owner: &str, slot: usize) {
        if let Some(slots) = self.owned.get_mut(owner) {
            slots.remove(&slot);
            if slots.is_empty() {
                self.owned.remove(owner);
            }
        }
    }
}
