//! Lists: a deque, so that pushing and popping at either end is O(1)
//! whatever the length.

use std::collections::VecDeque;

use bytes::Bytes;

use super::Footprint;

/// A list of byte strings.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ListValue {
    items: VecDeque<Bytes>,
    /// The items' footprint, kept by every mutation.
    payload_bytes: Footprint,
}

fn cost(item: &Bytes) -> Footprint {
    Footprint::of(&[item], 0)
}

impl ListValue {
    /// An empty list (only ever transient: the key layer deletes empty lists).
    pub fn new() -> ListValue {
        ListValue::default()
    }

    /// Elements.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// No element.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// See [`super::Value::heap_bytes`].
    pub fn heap_bytes(&self) -> usize {
        self.payload_bytes.heap
    }

    pub(crate) fn footprint(&self) -> Footprint {
        self.payload_bytes
    }

    /// The elements, head first.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = &Bytes> + ExactSizeIterator {
        self.items.iter()
    }

    /// The element at `index` (0 is the head).
    pub fn get(&self, index: usize) -> Option<&Bytes> {
        self.items.get(index)
    }

    /// Pushes at the head (`front`) or the tail, in argument order: LPUSH a b
    /// leaves `b a ...`.
    pub fn push(&mut self, front: bool, item: Bytes) {
        self.payload_bytes += cost(&item);
        if front {
            self.items.push_front(item);
        } else {
            self.items.push_back(item);
        }
    }

    /// Pops one element from the head or the tail.
    pub fn pop(&mut self, front: bool) -> Option<Bytes> {
        let item = if front {
            self.items.pop_front()
        } else {
            self.items.pop_back()
        }?;
        self.payload_bytes -= cost(&item);
        Some(item)
    }

    /// Replaces the element at `index`; false if there is none.
    pub fn set(&mut self, index: usize, item: Bytes) -> bool {
        match self.items.get_mut(index) {
            Some(slot) => {
                self.payload_bytes = self.payload_bytes - cost(slot) + cost(&item);
                *slot = item;
                true
            }
            None => false,
        }
    }

    /// Inserts so that the new element is at `index` (`index <= len`).
    pub fn insert(&mut self, index: usize, item: Bytes) {
        self.payload_bytes += cost(&item);
        self.items.insert(index.min(self.items.len()), item);
    }

    /// The position of the first element equal to `item`.
    pub fn position(&self, item: &[u8]) -> Option<usize> {
        self.items.iter().position(|x| x.as_ref() == item)
    }

    /// Removes up to `count` elements equal to `item` (all of them when
    /// `count` is 0), from the head when `count >= 0`, from the tail when
    /// negative, as LREM does. Returns how many went.
    pub fn remove_matching(&mut self, count: i64, item: &[u8]) -> usize {
        let limit = if count == 0 {
            usize::MAX
        } else {
            usize::try_from(count.unsigned_abs()).unwrap_or(usize::MAX)
        };
        let mut removed = 0;
        let old = std::mem::take(&mut self.items);
        let mut kept: VecDeque<Bytes> = VecDeque::with_capacity(old.len());
        if count >= 0 {
            for x in old {
                if removed < limit && x.as_ref() == item {
                    removed += 1;
                    self.payload_bytes -= cost(&x);
                } else {
                    kept.push_back(x);
                }
            }
        } else {
            for x in old.into_iter().rev() {
                if removed < limit && x.as_ref() == item {
                    removed += 1;
                    self.payload_bytes -= cost(&x);
                } else {
                    kept.push_front(x);
                }
            }
        }
        self.items = kept;
        removed
    }

    /// Keeps only the elements at `start..=stop` (already clamped to the
    /// list by the caller); an empty range empties the list.
    pub fn retain_range(&mut self, start: usize, stop_inclusive: Option<usize>) {
        let Some(stop) = stop_inclusive.filter(|&s| s >= start && start < self.items.len()) else {
            self.items.clear();
            self.payload_bytes = Footprint::default();
            return;
        };
        let stop = stop.min(self.items.len() - 1);
        for _ in stop + 1..self.items.len() {
            self.pop(false);
        }
        for _ in 0..start {
            self.pop(true);
        }
    }
}

impl FromIterator<Bytes> for ListValue {
    fn from_iter<I: IntoIterator<Item = Bytes>>(iter: I) -> ListValue {
        let mut list = ListValue::new();
        for item in iter {
            list.push(false, item);
        }
        list
    }
}
