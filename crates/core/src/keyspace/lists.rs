//! Lists.

use bytes::Bytes;

use super::{EffectOp, Exec, Result, clamp_range, misrouted};
use crate::command::{Command, CommandError, Reply};
use crate::value::{ListValue, Value};

impl Exec<'_> {
    fn list(&mut self, key: &[u8]) -> Result<Option<&ListValue>> {
        match self.entry(key).map(|e| &e.value) {
            None => Ok(None),
            Some(Value::List(l)) => Ok(Some(l)),
            Some(_) => Err(CommandError::WrongType),
        }
    }

    /// Removes up to `n` elements of the list at `key` from its head (or
    /// tail) and returns them in the order popped; `None` when `key` holds
    /// no list.
    fn pop_elements(&mut self, key: &Bytes, front: bool, n: usize) -> Result<Option<Vec<Bytes>>> {
        let Some(l) = self.list(key)? else {
            return Ok(None);
        };
        let n = n.min(l.len());
        let popped: Vec<Bytes> = if front {
            l.iter().take(n).cloned().collect()
        } else {
            l.iter().rev().take(n).cloned().collect()
        };
        if n > 0 {
            self.emit(key, EffectOp::Pop { front, count: n });
        }
        Ok(Some(popped))
    }

    pub(super) fn list_command(&mut self, c: &Command) -> Result<Reply> {
        match c {
            Command::Push {
                key,
                front,
                only_if_exists,
                elements,
            } => {
                let len = match self.list(key)? {
                    None if *only_if_exists => return Ok(Reply::Integer(0)),
                    None => 0,
                    Some(l) => l.len(),
                };
                self.emit(
                    key,
                    EffectOp::Push {
                        front: *front,
                        elements: elements.clone(),
                    },
                );
                Ok(Reply::Integer((len + elements.len()) as i64))
            }
            Command::Pop { key, front, count } => {
                let Some(popped) = self.pop_elements(key, *front, count.unwrap_or(1))? else {
                    return Ok(if count.is_some() {
                        Reply::NullArray
                    } else {
                        Reply::Null
                    });
                };
                let mut popped = popped.into_iter().map(Reply::Bulk);
                Ok(match count {
                    Some(_) => Reply::Array(popped.collect()),
                    None => popped.next().unwrap_or(Reply::Null),
                })
            }
            Command::LMPop { keys, front, count } => {
                for key in keys {
                    let Some(popped) = self.pop_elements(key, *front, *count)? else {
                        continue;
                    };
                    return Ok(Reply::Array(vec![
                        Reply::Bulk(key.clone()),
                        Reply::Array(popped.into_iter().map(Reply::Bulk).collect()),
                    ]));
                }
                Ok(Reply::NullArray)
            }
            Command::BPop { keys, front, .. } => {
                for key in keys {
                    let Some(element) = self
                        .pop_elements(key, *front, 1)?
                        .and_then(|popped| popped.into_iter().next())
                    else {
                        continue;
                    };
                    return Ok(Reply::Array(vec![
                        Reply::Bulk(key.clone()),
                        Reply::Bulk(element),
                    ]));
                }
                Ok(Reply::NullArray)
            }
            Command::BLMove {
                src,
                dst,
                from_front,
                to_front,
                ..
            } => self.list_command(&Command::LMove {
                src: src.clone(),
                dst: dst.clone(),
                from_front: *from_front,
                to_front: *to_front,
            }),
            Command::BLMPop {
                keys, front, count, ..
            } => self.list_command(&Command::LMPop {
                keys: keys.clone(),
                front: *front,
                count: *count,
            }),
            Command::LLen { key } => {
                Ok(Reply::Integer(self.list(key)?.map_or(0, |l| l.len()) as i64))
            }
            Command::LRange { key, start, stop } => {
                let Some(l) = self.list(key)? else {
                    return Ok(Reply::Array(vec![]));
                };
                Ok(Reply::Array(match clamp_range(*start, *stop, l.len()) {
                    None => vec![],
                    Some((a, b)) => l
                        .iter()
                        .skip(a)
                        .take(b - a + 1)
                        .map(|e| Reply::Bulk(e.clone()))
                        .collect(),
                }))
            }
            Command::LIndex { key, index } => {
                let Some(l) = self.list(key)? else {
                    return Ok(Reply::Null);
                };
                Ok(index_of(index.clone()?, l.len())
                    .and_then(|i| l.get(i))
                    .map_or(Reply::Null, |e| Reply::Bulk(e.clone())))
            }
            Command::LSet {
                key,
                index,
                element,
            } => {
                let Some(l) = self.list(key)? else {
                    return Err(CommandError::NoSuchKey);
                };
                let i = index_of(index.clone()?, l.len()).ok_or(CommandError::IndexOutOfRange)?;
                self.emit(
                    key,
                    EffectOp::ListSet {
                        index: i,
                        element: element.clone(),
                    },
                );
                Ok(Reply::OK)
            }
            Command::LInsert {
                key,
                before,
                pivot,
                element,
            } => {
                let Some(l) = self.list(key)? else {
                    return Ok(Reply::Integer(0));
                };
                let Some(at) = l.position(pivot) else {
                    return Ok(Reply::Integer(-1));
                };
                let len = l.len();
                let index = if *before { at } else { at + 1 };
                self.emit(
                    key,
                    EffectOp::ListInsert {
                        index,
                        element: element.clone(),
                    },
                );
                Ok(Reply::Integer(len as i64 + 1))
            }
            Command::LRem {
                key,
                count,
                element,
            } => {
                let Some(l) = self.list(key)? else {
                    return Ok(Reply::Integer(0));
                };
                let matching = l.iter().filter(|e| *e == element).count();
                let n = if *count == 0 {
                    matching
                } else {
                    matching.min(usize::try_from(count.unsigned_abs()).unwrap_or(usize::MAX))
                };
                if n > 0 {
                    self.emit(
                        key,
                        EffectOp::ListRemove {
                            count: *count,
                            element: element.clone(),
                        },
                    );
                }
                Ok(Reply::Integer(n as i64))
            }
            Command::LTrim { key, start, stop } => {
                let Some(l) = self.list(key)? else {
                    return Ok(Reply::OK);
                };
                let len = l.len();
                match clamp_range(*start, *stop, len) {
                    Some((0, b)) if b + 1 == len => {}
                    Some((a, b)) => self.emit(
                        key,
                        EffectOp::ListTrim {
                            start: a,
                            stop: Some(b),
                        },
                    ),
                    None => self.emit(
                        key,
                        EffectOp::ListTrim {
                            start: 0,
                            stop: None,
                        },
                    ),
                }
                Ok(Reply::OK)
            }
            Command::LPos {
                key,
                element,
                rank,
                count,
                max_len,
            } => {
                let Some(l) = self.list(key)? else {
                    return Ok(if count.is_some() {
                        Reply::Array(vec![])
                    } else {
                        Reply::Null
                    });
                };
                Ok(lpos(l, element, *rank, *count, *max_len))
            }
            Command::LMove {
                src,
                dst,
                from_front,
                to_front,
            } => {
                let Some(l) = self.list(src)? else {
                    return Ok(Reply::Null);
                };
                let element = if *from_front {
                    l.iter().next()
                } else {
                    l.iter().next_back()
                }
                .cloned();
                let Some(element) = element else {
                    return Ok(Reply::Null);
                };
                let alone = l.len() == 1;
                self.list(dst)?;
                if src == dst && alone {
                    // Popping the only element would delete the key, and
                    // its TTL with it, before the push made it again: the
                    // list stays as it is, changed in place.
                    self.emit(
                        src,
                        EffectOp::ListSet {
                            index: 0,
                            element: element.clone(),
                        },
                    );
                    return Ok(Reply::Bulk(element));
                }
                self.emit(
                    src,
                    EffectOp::Pop {
                        front: *from_front,
                        count: 1,
                    },
                );
                self.emit(
                    dst,
                    EffectOp::Push {
                        front: *to_front,
                        elements: vec![element.clone()],
                    },
                );
                Ok(Reply::Bulk(element))
            }
            other => Err(misrouted(other)),
        }
    }
}

/// A list index (negative from the end) as a position, if within the list.
fn index_of(index: i64, len: usize) -> Option<usize> {
    let len = i64::try_from(len).ok()?;
    let i = if index < 0 { len + index } else { index };
    if (0..len).contains(&i) {
        Some(i as usize)
    } else {
        None
    }
}

/// LPOS: matches from the head (rank > 0) or the tail (rank < 0), skipping
/// `|rank| - 1` of them, at most `count` (0: all), looking at no more than
/// `max_len` elements (0: all).
fn lpos(l: &ListValue, element: &Bytes, rank: i64, count: Option<usize>, max_len: usize) -> Reply {
    let want = match count {
        None => 1,
        Some(0) => usize::MAX,
        Some(n) => n,
    };
    // Redis 7.0 negates i64::MIN into itself and then takes every match as
    // far enough: the first match from the tail.
    let mut skip = if rank == i64::MIN {
        0
    } else {
        rank.unsigned_abs() - 1
    };
    let limit = if max_len == 0 { usize::MAX } else { max_len };
    let mut found = Vec::new();
    let positions: Box<dyn Iterator<Item = (usize, &Bytes)>> = if rank > 0 {
        Box::new(l.iter().enumerate())
    } else {
        Box::new(l.iter().enumerate().rev())
    };
    for (seen, (i, e)) in positions.enumerate() {
        if seen >= limit || found.len() >= want {
            break;
        }
        if e == element {
            if skip > 0 {
                skip -= 1;
            } else {
                found.push(i);
            }
        }
    }
    match count {
        None => found
            .first()
            .map_or(Reply::Null, |&i| Reply::Integer(i as i64)),
        Some(_) => Reply::Array(
            found
                .into_iter()
                .map(|i| Reply::Integer(i as i64))
                .collect(),
        ),
    }
}
