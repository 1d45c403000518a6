//! The shape of an lvs.cf: `key = value` lines, `kind NAME {` blocks closed by `}`, quoted
//! strings and `#` comments, read into a tree of statements that keep their line numbers.
//! Nothing here knows what a directive means.

use super::super::MAX_NESTING;
use super::Report;

/// One line of meaning: a `key = value` setting, or a block such as `virtual NAME { ... }`.
#[derive(Debug)]
pub(super) struct Stmt {
    /// 1-based line of the key.
    pub line: usize,
    /// The directive (`port`) or the kind of block (`virtual`).
    pub key: String,
    /// The words after `=`, quotes removed.
    pub values: Vec<String>,
    pub block: Option<Block>,
}

#[derive(Debug)]
pub(super) struct Block {
    pub name: String,
    /// The line of the closing brace.
    pub close: usize,
    pub body: Vec<Stmt>,
}

impl Stmt {
    pub fn body(&self) -> &[Stmt] {
        self.block.as_ref().map_or(&[], |b| b.body.as_slice())
    }

    pub fn name(&self) -> &str {
        self.block.as_ref().map_or("", |b| b.name.as_str())
    }

    /// "line 12" or "lines 12-20", to name what a note covers.
    pub fn span(&self) -> String {
        match &self.block {
            Some(block) if block.close > self.line => {
                format!("lines {}-{}", self.line, block.close)
            }
            _ => format!("line {}", self.line),
        }
    }
}

#[derive(Debug, PartialEq)]
enum Token {
    Word(String),
    Equals,
    Open,
    Close,
}

/// An open block and what it holds so far; the root frame has no owner.
struct Frame {
    owner: Option<Stmt>,
    body: Vec<Stmt>,
}

/// Reads the whole text. Every line that cannot be read is reported as an error, and the
/// tree is still returned so that later stages can report more.
pub(super) fn parse(text: &str, report: &mut Report) -> Vec<Stmt> {
    let mut stack = vec![Frame {
        owner: None,
        body: Vec::new(),
    }];
    let mut last_line = 0;
    // Braces still open inside a block nested too deeply: counted, never built.
    let mut too_deep = 0usize;
    for (index, raw) in text.lines().enumerate() {
        let line = index + 1;
        last_line = line;
        match lex(raw) {
            // The same lines open and close blocks here as in `statement`.
            Ok(tokens) if too_deep > 0 => {
                if opens_block(&tokens) {
                    too_deep += 1;
                } else if tokens.first() == Some(&Token::Close) {
                    too_deep -= 1;
                }
            }
            Ok(tokens) if stack.len() > MAX_NESTING && opens_block(&tokens) => {
                report.error(
                    line,
                    format!(
                        "this block is nested more than {MAX_NESTING} levels deep (lvs.cf \
                         needs 2); it and everything in it up to its closing brace is not read"
                    ),
                );
                too_deep = 1;
            }
            Ok(tokens) => statement(line, tokens, &mut stack, report),
            Err(why) => report.error(line, why),
        }
    }
    while stack.len() > 1 {
        if let Some(Frame {
            owner: Some(owner), ..
        }) = stack.last()
        {
            report.error(
                owner.line,
                format!(
                    "`{} {}` opens a block with `{{` that is never closed with `}}`",
                    owner.key,
                    owner.name()
                ),
            );
        }
        close(&mut stack, last_line);
    }
    stack.pop().map(|root| root.body).unwrap_or_default()
}

/// Whether `statement` opens a block for this line (named, unnamed or stray).
fn opens_block(tokens: &[Token]) -> bool {
    matches!(
        tokens,
        [Token::Word(_), Token::Word(_), Token::Open]
            | [Token::Word(_), Token::Open]
            | [Token::Open, ..]
    )
}

/// Places the tokens of one line in the tree.
fn statement(line: usize, tokens: Vec<Token>, stack: &mut Vec<Frame>, report: &mut Report) {
    let mut tokens = tokens.into_iter();
    let Some(first) = tokens.next() else { return };
    let rest: Vec<Token> = tokens.collect();
    match (first, rest.as_slice()) {
        (Token::Close, rest) => {
            if !rest.is_empty() {
                report.error(line, "`}` must stand alone on its line");
            }
            if stack.len() < 2 {
                report.error(line, "`}` closes no open block");
            } else {
                close(stack, line);
            }
        }
        (Token::Word(key), [Token::Equals, values @ ..]) => {
            let mut words = Vec::new();
            for value in values {
                match value {
                    Token::Word(word) => words.push(word.clone()),
                    _ => {
                        report.error(
                            line,
                            format!(
                                "`{key}`: a brace in a value must be quoted (a block opens \
                                 with `kind NAME {{` on its own line)"
                            ),
                        );
                        return;
                    }
                }
            }
            if words.is_empty() {
                report.error(line, format!("`{key}` needs a value after `=`"));
                return;
            }
            push(
                stack,
                Stmt {
                    line,
                    key,
                    values: words,
                    block: None,
                },
            );
        }
        (Token::Word(kind), [Token::Word(name), Token::Open]) => {
            stack.push(Frame {
                owner: Some(Stmt {
                    line,
                    key: kind,
                    values: Vec::new(),
                    block: Some(Block {
                        name: name.clone(),
                        close: line,
                        body: Vec::new(),
                    }),
                }),
                body: Vec::new(),
            });
        }
        (Token::Word(kind), [Token::Open]) => {
            report.error(line, format!("`{kind} {{` needs a name before the brace"));
            open_anonymous(stack);
        }
        (Token::Open, _) => {
            report.error(
                line,
                "`{` must end a line that starts a block, like `virtual NAME {`",
            );
            open_anonymous(stack);
        }
        (Token::Word(key), rest) if !rest.contains(&Token::Equals) => {
            let why = match rest.last() {
                Some(Token::Open) => {
                    format!("`{key}`: a block is `{key} NAME {{` with a name of one word")
                }
                Some(Token::Word(_)) if matches!(key.as_str(), "virtual" | "server") => {
                    format!("`{key}` must end its line with `{{` to open its block")
                }
                _ => format!("`{key}` needs `=` and a value (`{key} = value`)"),
            };
            report.error(line, why);
        }
        _ => report.error(
            line,
            "cannot read this line as `key = value` or `kind NAME {`",
        ),
    }
}

/// A brace without an owner: the block is kept (so that braces still pair up) but dropped
/// when it closes.
fn open_anonymous(stack: &mut Vec<Frame>) {
    stack.push(Frame {
        owner: None,
        body: Vec::new(),
    });
}

fn push(stack: &mut [Frame], stmt: Stmt) {
    if let Some(frame) = stack.last_mut() {
        frame.body.push(stmt);
    }
}

/// Ends the innermost block at `line` and hands it to its owner in the enclosing block.
fn close(stack: &mut Vec<Frame>, line: usize) {
    let Some(frame) = stack.pop() else { return };
    let Some(mut owner) = frame.owner else { return };
    if let Some(block) = owner.block.as_mut() {
        block.close = line;
        block.body = frame.body;
    }
    push(stack, owner);
}

/// Splits one line into words, `=` and braces. `#` starts a comment outside quotes. Quotes
/// (" or ') group words with their spaces and are removed; inside them `\"` is a quote and
/// other backslash sequences are kept as written, because nanny and the box's checks read
/// them (`\r\n` in a send string, `\.` in a regular expression). Only the first `=` of a line
/// separates; later ones belong to the value.
fn lex(line: &str) -> Result<Vec<Token>, String> {
    let mut tokens = Vec::new();
    let mut word = String::new();
    // A word has started even when it is still empty (`""` is an empty word).
    let mut started = false;
    let mut quote: Option<char> = None;
    let mut seen_equals = false;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if let Some(q) = quote {
            if c == q {
                quote = None;
            } else if c == '\\' {
                match chars.next() {
                    Some(next) if next == q => word.push(next),
                    Some(next) => {
                        word.push('\\');
                        word.push(next);
                    }
                    None => word.push('\\'),
                }
            } else {
                word.push(c);
            }
            continue;
        }
        let token = match c {
            '#' => break,
            '"' | '\'' => {
                quote = Some(c);
                started = true;
                continue;
            }
            '=' if !seen_equals => {
                seen_equals = true;
                Token::Equals
            }
            '{' => Token::Open,
            '}' => Token::Close,
            c if c.is_whitespace() => {
                if started {
                    tokens.push(Token::Word(std::mem::take(&mut word)));
                    started = false;
                }
                continue;
            }
            c => {
                word.push(c);
                started = true;
                continue;
            }
        };
        if started {
            tokens.push(Token::Word(std::mem::take(&mut word)));
            started = false;
        }
        tokens.push(token);
    }
    if let Some(q) = quote {
        return Err(format!(
            "a string opened with {q} is not closed on this line"
        ));
    }
    if started {
        tokens.push(Token::Word(word));
    }
    Ok(tokens)
}
