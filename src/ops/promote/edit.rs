//! Surgical text edits of image references, in the three forms apps keep them: plain
//! manifests (`image: repo:tag`), kustomize `images:` entries (`newTag`/`newName`), and Helm
//! values (`repository:` with a sibling `tag:`). Lines are edited in place: comments, order,
//! quotes and indentation stay as they were; YAML is never re-serialized.

/// `repo:tag` -> (repo, tag); a reference with a digest (`@sha256:`) or no tag has no tag.
pub fn split_image(image: &str) -> (&str, Option<&str>) {
    if image.contains('@') {
        return (image, None);
    }
    match image.rsplit_once(':') {
        Some((r, t)) if !t.contains('/') && !r.is_empty() => (r, Some(t)),
        _ => (image, None),
    }
}

/// What one edit did to one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Edit {
    pub text: String,
    /// References to the repository found (whether or not they changed).
    pub matched: usize,
    /// References rewritten.
    pub changed: usize,
}

/// One `key: value` line.
#[derive(Debug, Clone)]
struct Kv<'a> {
    /// Column of the key (after any `- `).
    col: usize,
    dash: bool,
    key: &'a str,
    /// Byte range of the value without its quotes.
    start: usize,
    end: usize,
    value: &'a str,
}

fn kv(line: &str) -> Option<Kv<'_>> {
    let indent = line.len() - line.trim_start_matches(' ').len();
    let mut at = indent;
    let mut dash = false;
    if line[at..].starts_with("- ") {
        dash = true;
        at += 2;
        at += line[at..].len() - line[at..].trim_start_matches(' ').len();
    }
    let rest = &line[at..];
    let colon = rest.find(':')?;
    let key = &rest[..colon];
    if key.is_empty()
        || !key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c))
    {
        return None;
    }
    let after = &rest[colon + 1..];
    if !(after.is_empty() || after.starts_with(' ') || after.starts_with('\t')) {
        return None;
    }
    let vstart = at + colon + 1 + (after.len() - after.trim_start().len());
    let raw = &line[vstart..];
    let (start, end) = match raw.chars().next() {
        Some(q @ ('"' | '\'')) => {
            let close = raw[1..].find(q)? + 1;
            (vstart + 1, vstart + close)
        }
        _ => {
            let token = raw.split(" #").next().unwrap_or("").trim_end();
            (vstart, vstart + token.len())
        }
    };
    Some(Kv {
        col: at,
        dash,
        key,
        start,
        end,
        value: &line[start..end],
    })
}

fn replace(line: &str, kv: &Kv<'_>, value: &str) -> String {
    format!("{}{}{}", &line[..kv.start], value, &line[kv.end..])
}

/// Lines with their endings, so the text joins back byte for byte.
fn lines(text: &str) -> Vec<(&str, &str)> {
    text.split_inclusive('\n')
        .map(|l| match l.strip_suffix("\r\n") {
            Some(b) => (b, "\r\n"),
            None => match l.strip_suffix('\n') {
                Some(b) => (b, "\n"),
                None => (l, ""),
            },
        })
        .collect()
}

/// Plain manifests (and `image: repo:tag` in values files): every `image:` whose repository
/// is `repo` gets `tag`.
pub fn set_plain(text: &str, repo: &str, tag: &str) -> Edit {
    let mut out = String::with_capacity(text.len() + 16);
    let (mut matched, mut changed) = (0, 0);
    for (line, nl) in lines(text) {
        let mut new = line.to_string();
        if let Some(k) = kv(line).filter(|k| k.key == "image")
            && let (r, Some(old)) = split_image(k.value)
            && r == repo
        {
            matched += 1;
            if old != tag {
                changed += 1;
                new = replace(line, &k, &format!("{repo}:{tag}"));
            }
        }
        out.push_str(&new);
        out.push_str(nl);
    }
    Edit {
        text: out,
        matched,
        changed,
    }
}

/// Helm values: in each mapping with `repository: repo`, its sibling `tag:` becomes `tag`
/// (quotes kept); `image: repo:tag` strings are edited as in [`set_plain`].
pub fn set_helm(text: &str, repo: &str, tag: &str) -> Edit {
    let plain = set_plain(text, repo, tag);
    let ls = lines(&plain.text);
    let mut new: Vec<String> = ls.iter().map(|(l, _)| l.to_string()).collect();
    let (mut matched, mut changed) = (plain.matched, plain.changed);
    for (i, (line, _)) in ls.iter().enumerate() {
        let Some(k) = kv(line).filter(|k| k.key == "repository" && k.value == repo) else {
            continue;
        };
        // The siblings: lines at the same key column, up to one shallower.
        let sibling = |j: usize| -> Option<usize> {
            let (l, _) = ls[j];
            let t = l.trim_start();
            if t.is_empty() || t.starts_with('#') {
                return Some(usize::MAX);
            }
            let kj = kv(l)?;
            Some(kj.col)
        };
        let mut found = None;
        let mut j = i;
        while j > 0 {
            j -= 1;
            match sibling(j) {
                Some(usize::MAX) => continue,
                Some(c) if c == k.col && !kv(ls[j].0).is_some_and(|x| x.dash && !k.dash) => {
                    if kv(ls[j].0).is_some_and(|x| x.key == "tag") {
                        found = Some(j);
                        break;
                    }
                    if kv(ls[j].0).is_some_and(|x| x.dash) {
                        break;
                    }
                }
                Some(c) if c > k.col => continue,
                _ => break,
            }
        }
        if found.is_none() {
            for (j, _) in ls.iter().enumerate().skip(i + 1) {
                match sibling(j) {
                    Some(usize::MAX) => continue,
                    Some(c) if c == k.col && !kv(ls[j].0).is_some_and(|x| x.dash) => {
                        if kv(ls[j].0).is_some_and(|x| x.key == "tag") {
                            found = Some(j);
                            break;
                        }
                    }
                    Some(c) if c > k.col => continue,
                    _ => break,
                }
            }
        }
        if let Some(j) = found
            && let Some(t) = kv(ls[j].0)
        {
            matched += 1;
            if t.value != tag {
                changed += 1;
                new[j] = replace(ls[j].0, &t, tag);
            }
        }
    }
    let mut out = String::with_capacity(plain.text.len());
    for (n, (_, nl)) in new.iter().zip(ls.iter()) {
        out.push_str(n);
        out.push_str(nl);
    }
    Edit {
        text: out,
        matched,
        changed,
    }
}

/// Kustomize: the `images:` entry for `repo` (by `newName`, else by `name` when it has no
/// `newName`) gets `newTag: tag`, added after the entry's last line when it has none.
pub fn set_kustomize(text: &str, repo: &str, tag: &str) -> Edit {
    let ls = lines(text);
    let mut new: Vec<(String, &str)> = ls.iter().map(|(l, nl)| (l.to_string(), *nl)).collect();
    let (mut matched, mut changed) = (0, 0);
    let mut inserts: Vec<(usize, String)> = Vec::new();
    let mut i = 0;
    while i < ls.len() {
        let is_images = kv(ls[i].0).is_some_and(|k| k.key == "images" && k.value.is_empty());
        if !is_images {
            i += 1;
            continue;
        }
        let base = kv(ls[i].0).map(|k| k.col).unwrap_or(0);
        // Entries: runs of lines, each starting with "- " deeper than (or at) `images:`.
        let mut entries: Vec<(usize, usize)> = Vec::new();
        let mut j = i + 1;
        while j < ls.len() {
            let t = ls[j].0.trim_start();
            if t.is_empty() || t.starts_with('#') {
                j += 1;
                continue;
            }
            let indent = ls[j].0.len() - t.len();
            let Some(k) = kv(ls[j].0) else { break };
            if indent < base || (indent == base && !k.dash) {
                break;
            }
            if k.dash {
                entries.push((j, j));
            } else if let Some(last) = entries.last_mut() {
                last.1 = j;
            }
            j += 1;
        }
        for (s, e) in entries {
            let fields: Vec<(usize, Kv<'_>)> = (s..=e)
                .filter_map(|n| kv(ls[n].0).map(|k| (n, k)))
                .collect();
            let get = |name: &str| fields.iter().find(|(_, k)| k.key == name);
            let hit = match get("newName") {
                Some((_, k)) => k.value == repo,
                None => get("name").is_some_and(|(_, k)| k.value == repo),
            };
            if !hit || get("digest").is_some() {
                continue;
            }
            matched += 1;
            match get("newTag") {
                Some((n, k)) if k.value != tag => {
                    changed += 1;
                    new[*n].0 = replace(ls[*n].0, k, tag);
                }
                Some(_) => {}
                None => {
                    changed += 1;
                    let col = fields.first().map(|(_, k)| k.col).unwrap_or(base + 2);
                    inserts.push((e, format!("{}newTag: {tag}", " ".repeat(col))));
                }
            }
        }
        i = j;
    }
    let mut out = String::with_capacity(text.len() + 32);
    for (n, (line, nl)) in new.iter().enumerate() {
        out.push_str(line);
        let nl = if nl.is_empty() && inserts.iter().any(|(at, _)| *at == n) {
            "\n"
        } else {
            nl
        };
        out.push_str(nl);
        for (_, ins) in inserts.iter().filter(|(at, _)| *at == n) {
            out.push_str(ins);
            out.push_str(if nl == "\r\n" { "\r\n" } else { "\n" });
        }
    }
    Edit {
        text: out,
        matched,
        changed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_images() {
        assert_eq!(split_image("r:5000/a/b:v1"), ("r:5000/a/b", Some("v1")));
        assert_eq!(split_image("r:5000/a/b"), ("r:5000/a/b", None));
        assert_eq!(split_image("a/b@sha256:00"), ("a/b@sha256:00", None));
    }

    #[test]
    fn plain_edits_only_the_matching_image_and_keeps_the_rest() {
        let text = "# keep me\nspec:\n  containers:\n  - name: cart\n    image: \"ghcr.io/acme/cart:sha-old\"  # bumped by CI\n  - name: side\n    image: ghcr.io/acme/sidecar:1.0\n";
        let e = set_plain(text, "ghcr.io/acme/cart", "sha-new");
        assert_eq!((e.matched, e.changed), (1, 1));
        assert_eq!(e.text, text.replace("cart:sha-old\"", "cart:sha-new\""));
        let again = set_plain(&e.text, "ghcr.io/acme/cart", "sha-new");
        assert_eq!((again.matched, again.changed), (1, 0));
        assert_eq!(again.text, e.text);
        let none = set_plain(text, "ghcr.io/acme/other", "x");
        assert_eq!(
            (none.matched, none.changed, none.text.as_str()),
            (0, 0, text)
        );
    }

    #[test]
    fn kustomize_sets_new_tag_by_name_or_new_name_and_adds_it_when_missing() {
        let text = "resources:\n  - deployment.yaml\nimages:\n  # the app\n  - name: ghcr.io/acme/cart\n    newTag: sha-old # pinned\n  - name: placeholder\n    newName: ghcr.io/acme/api\n  - name: ghcr.io/acme/web\n";
        let e = set_kustomize(text, "ghcr.io/acme/cart", "sha-new");
        assert_eq!((e.matched, e.changed), (1, 1));
        assert_eq!(e.text, text.replace("newTag: sha-old", "newTag: sha-new"));
        let e = set_kustomize(text, "ghcr.io/acme/api", "v2");
        assert_eq!((e.matched, e.changed), (1, 1));
        assert!(
            e.text.contains(
                "    newName: ghcr.io/acme/api\n    newTag: v2\n  - name: ghcr.io/acme/web\n"
            ),
            "{}",
            e.text
        );
        let e = set_kustomize(text, "ghcr.io/acme/web", "v3");
        assert!(
            e.text
                .ends_with("  - name: ghcr.io/acme/web\n    newTag: v3\n"),
            "{}",
            e.text
        );
        // `placeholder` is renamed by newName, so its name does not match.
        assert_eq!(set_kustomize(text, "placeholder", "x").matched, 0);
        // `resources:` entries are not images.
        assert_eq!(set_kustomize(text, "deployment.yaml", "x").matched, 0);
    }

    #[test]
    fn helm_sets_the_sibling_tag_of_the_repository() {
        let text = "# Values\nreplicaCount: 2\nimage:\n  api:\n    repository: ghcr.io/v/api\n    tag: \"main-aaa\" # CI\n  celery:\n    tag: main-bbb\n    repository: ghcr.io/v/celery\ningress:\n  tag: not-an-image\n";
        let e = set_helm(text, "ghcr.io/v/api", "develop-ccc");
        assert_eq!((e.matched, e.changed), (1, 1));
        assert_eq!(e.text, text.replace("\"main-aaa\"", "\"develop-ccc\""));
        let e = set_helm(text, "ghcr.io/v/celery", "develop-ccc");
        assert_eq!((e.matched, e.changed), (1, 1));
        assert_eq!(e.text, text.replace("tag: main-bbb", "tag: develop-ccc"));
        assert_eq!(set_helm(text, "ghcr.io/v/none", "x").matched, 0);
        let inline = "image: ghcr.io/v/api:main-aaa\n";
        assert_eq!(
            set_helm(inline, "ghcr.io/v/api", "t").text,
            "image: ghcr.io/v/api:t\n"
        );
    }
}
